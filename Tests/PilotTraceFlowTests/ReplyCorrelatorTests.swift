import PilotTraceProtocols
import PilotTraceTestSupport
import PilotTraceWire
import Testing

@testable import PilotTraceFlow

@Suite struct ReplyCorrelatorTests {
    func publish(_ topic: String, _ json: String) -> MQTTPublish {
        var d = MQTTStreamDecoder()
        d.feed(MQTTWire.publish(topic, Array(json.utf8)))
        guard case .publish(let p)? = (try? d.next())??.packet else { fatalError("not a publish") }
        return p
    }

    let t0 = Timestamp(seconds: 100, nanoseconds: 0)
    func at(_ s: Double) -> Timestamp { t0.adding(seconds: s) }
    let device = ConnectionID(rawValue: 1), cloud = ConnectionID(rawValue: 2)

    @Test func everyKindIsMatchedByTidAndBidOnTheSameGateway() {
        var c = ReplyCorrelator()
        let pairs: [(String, String, RequestReply.Kind)] = [
            ("sys/product/RC/status", "sys/product/RC/status_reply", .status),
            ("thing/product/RC/services", "thing/product/RC/services_reply", .services),
            ("thing/product/RC/requests", "thing/product/RC/requests_reply", .requests),
            ("thing/product/RC/property/set", "thing/product/RC/property/set_reply", .propertySet),
        ]
        for (i, (req, rep, _)) in pairs.enumerated() {
            c.publish(publish(req, #"{"tid":"t\#(i)","bid":"b\#(i)","method":"m","data":{}}"#), on: device, at: at(Double(i)))
            let data = rep.hasSuffix("set_reply") ? #"{"height_limit":{"result":0}}"# : #"{"result":0}"#
            c.publish(publish(rep, #"{"tid":"t\#(i)","bid":"b\#(i)","data":\#(data)}"#), on: cloud, at: at(Double(i) + 0.25))
        }
        let all = c.finish()
        #expect(all.map(\.kind) == pairs.map(\.2))
        #expect(all.allSatisfy { $0.answered && $0.result == 0 && abs(($0.latency ?? 0) - 0.25) < 1e-6 })
        #expect(c.unmatchedReplies.isEmpty)
    }

    @Test func eventsWithoutNeedReplyExpectNothing() {
        var c = ReplyCorrelator()
        c.publish(publish("thing/product/RC/events", #"{"tid":"a","bid":"b","method":"x","need_reply":0}"#), on: device, at: at(0))
        c.publish(publish("thing/product/RC/events", #"{"tid":"c","bid":"d","method":"x","need_reply":1}"#), on: device, at: at(1))
        let all = c.finish()
        #expect(all.count == 1)
        #expect(all[0].tid == "c" && !all[0].answered)
    }

    @Test func wrongIdsAndOtherGatewaysDoNotMatch() {
        var c = ReplyCorrelator()
        c.publish(publish("sys/product/RC/status", #"{"tid":"a","bid":"b","method":"update_topo"}"#), on: device, at: at(0))
        c.publish(publish("sys/product/RC/status_reply", #"{"tid":"a","bid":"WRONG","data":{"result":0}}"#), on: device, at: at(1))
        c.publish(publish("sys/product/OTHER/status_reply", #"{"tid":"a","bid":"b","data":{"result":0}}"#), on: device, at: at(1))
        let all = c.finish()
        #expect(all.count == 1 && !all[0].answered)
        #expect(c.unmatchedReplies.count == 2)
    }

    @Test func theBrokerRelayIsNotASecondRequestAndOldRequestsExpire() {
        var c = ReplyCorrelator(horizon: 10)
        let status = publish("sys/product/RC/status", #"{"tid":"a","bid":"b","method":"update_topo"}"#)
        c.publish(status, on: device, at: at(0))
        c.publish(status, on: cloud, at: at(0.001))  // the same message delivered to the cloud's subscription
        c.publish(publish("thing/product/RC/osd", "{}"), on: device, at: at(20))
        c.publish(publish("sys/product/RC/status_reply", #"{"tid":"a","bid":"b","data":{"result":0}}"#), on: device, at: at(21))
        let all = c.finish()
        #expect(all.count == 1)
        #expect(!all[0].answered)  // settled unanswered after 10 s, so the late reply matches nothing
        #expect(c.unmatchedReplies.count == 1)
    }
}
