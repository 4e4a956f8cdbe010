import Testing

@testable import PilotTraceProxy

struct MQTTAddressRewriterTests {
    func rewrite(_ json: String) -> (String, [MQTTAddressRewriter.Replacement]) {
        let (out, r) = MQTTAddressRewriter.rewrite(Array(json.utf8)) { original in
            BrokerAddress(original)?.through(host: "127.0.0.1", port: 18830, tls: false).description
        }
        return (String(decoding: out, as: UTF8.self), r)
    }

    @Test func theLoginResponsesAddressIsRewrittenAndEverythingElseKept() {
        let body =
            #"{"code":0,"message":"success","data":{"user_id":"u1","mqtt_username":"pilot","mqtt_password":"pilot123",  "mqtt_addr" : "tcp://cloud.example:1883","access_token":"t"}}"#
        let (out, r) = rewrite(body)
        #expect(out == body.replacingOccurrences(of: "\"tcp://cloud.example:1883\"", with: "\"tcp://127.0.0.1:18830\""))
        #expect(r == [.init(key: "data.mqtt_addr", original: "tcp://cloud.example:1883", rewritten: "tcp://127.0.0.1:18830")])
    }

    @Test func schemeAndPathAreKeptAndEscapesDecoded() {
        let (out, r) = rewrite(#"{"data":{"mqtt_addr":"ws:\/\/cloud:8083\/mqtt"}}"#)
        #expect(out == #"{"data":{"mqtt_addr":"ws://127.0.0.1:18830/mqtt"}}"#)
        #expect(r.first?.original == "ws://cloud:8083/mqtt")
    }

    @Test func theThingModulesHostIsRewrittenOnlyUnderThing() {
        let (out, r) = rewrite(#"{"thing":{"host":"ssl://b:8883","username":"x"},"api":{"host":"https://cloud"},"host":"tcp://x:1"}"#)
        #expect(out == #"{"thing":{"host":"tcp://127.0.0.1:18830","username":"x"},"api":{"host":"https://cloud"},"host":"tcp://x:1"}"#)
        #expect(r.map(\.key) == ["thing.host"])
    }

    @Test func valuesThatOnlyMentionTheKeyAndNonJSONAreLeftAlone() {
        for body in [#"{"note":"mqtt_addr","list":["mqtt_addr"]}"#, "mqtt_addr: tcp://a:1", #"{"mqtt_addr":"tcp://a:1""#, "", #"{"mqtt_addr":42}"#] {
            let (out, r) = rewrite(body)
            #expect(out == body)
            #expect(r.isEmpty)
        }
    }

    @Test func everyAddressInArraysIsRewritten() {
        let (out, r) = rewrite(#"[{"mqtt_addr":"tcp://a:1"},{"x":[1,true,null,{"mqtt_addr":"tcp://b:2"}]}]"#)
        #expect(out == #"[{"mqtt_addr":"tcp://127.0.0.1:18830"},{"x":[1,true,null,{"mqtt_addr":"tcp://127.0.0.1:18830"}]}]"#)
        #expect(r.count == 2)
    }

    @Test func brokerAddressesParseAndMapTheirTLS() {
        #expect(BrokerAddress("tcp://10.1.2.3:1883") == BrokerAddress(scheme: "tcp", host: "10.1.2.3", port: 1883))
        #expect(BrokerAddress("ssl://h")?.port == 8883)
        #expect(BrokerAddress("[::1]:1884") == BrokerAddress(scheme: "tcp", host: "::1", port: 1884))
        #expect(BrokerAddress("wss://h:443/mqtt")?.through(host: "p", port: 9, tls: false).description == "ws://p:9/mqtt")
        #expect(BrokerAddress("tcp://h:1")?.through(host: "p", port: 9, tls: true).description == "ssl://p:9")
        #expect(BrokerAddress("tcp://h:99999") == nil)
        #expect(BrokerAddress("tcp://:1") == nil)
        #expect(HostPort("8080") == HostPort(host: "127.0.0.1", port: 8080))
        #expect(HostPort("0.0.0.0:1")?.isWildcard == true)
        #expect(HostPort("127.0.0.1:0") == HostPort(host: "127.0.0.1", port: 0))
        #expect(HostPort("[::1]:0") == HostPort(host: "::1", port: 0))
        #expect(HostPort("nonsense") == nil)
        #expect(UpstreamURL("https://cloud.example")?.port == 443)
        #expect(UpstreamURL("http://127.0.0.1:6789")?.hostHeader == "127.0.0.1:6789")
        #expect(UpstreamURL("ftp://x") == nil)
    }
}
