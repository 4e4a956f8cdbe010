import Foundation
import PilotTraceProtocols
import Testing

@testable import PilotTraceFlow

@Suite struct DJIMessagesTests {
    @Test(arguments: [
        ("sys/product/RC1/status", "RC1", DJITopic.Kind.status),
        ("sys/product/RC1/status_reply", "RC1", .statusReply),
        ("thing/product/AC1/osd", "AC1", .osd),
        ("thing/product/RC1/state", "RC1", .state),
        ("thing/product/RC1/services_reply", "RC1", .servicesReply),
        ("thing/product/RC1/property/set", "RC1", .propertySet),
        ("thing/product/RC1/property/set_reply", "RC1", .propertySetReply),
        ("thing/product/RC1/drc/down", "RC1", .drcDown),
        ("thing/product/RC1/status", "RC1", .statusTypo),
    ])
    func topicsAreClassified(topic: String, sn: String, kind: DJITopic.Kind) {
        let t = DJITopic(topic)
        #expect(t.sn == sn)
        #expect(t.kind == kind)
    }

    @Test(
        "Telemetry is thing/product/…/osd and …/state, nothing else",
        arguments: [
            ("thing/product/1581F5FHD23000000000/osd", true), ("thing/product/5YSZL260000000/state", true),
            ("thing/product//osd", true), ("thing/product/SN/events", false), ("sys/product/SN/status", false),
            ("thing/product/SN/osd/extra", false), ("thing/product/SN/xosd", false), ("thing/product/", false),
            ("thing/osd", false), ("", false), ("/osd", false),
        ])
    func telemetryTopics(topic: String, telemetry: Bool) {
        #expect(DJITopic.isTelemetry(topic) == telemetry)
    }

    @Test func directionsAndOtherTopics() {
        #expect(DJITopic("sys/product/RC1/status").isUplink)
        #expect(DJITopic("thing/product/RC1/services").isDownlink)
        #expect(DJITopic("thing/product/RC1/events_reply").isDownlink)
        #expect(DJITopic("house/bulbs/bulb1") == .other("house/bulbs/bulb1"))
        #expect(DJITopic("sys/product//status") == .other("sys/product//status"))
        #expect(DJITopic("thing/product/RC1/unknown").kind == nil)
    }

    @Test func envelopeKeepsMalformedPayloadsWithTheReason() {
        let bad = DJIEnvelope(payload: Array("{not json".utf8))
        #expect(!bad.isValid)
        #expect(bad.problem?.contains("not JSON") == true)
        let array = DJIEnvelope(payload: Array("[1,2]".utf8))
        #expect(array.problem == "the payload is JSON but not an object")
        let ok = DJIEnvelope(payload: Array(#"{"tid":"a","bid":"b","timestamp":1700000000000,"method":"x","need_reply":1,"gateway":"RC1","data":{}}"#.utf8))
        #expect(ok.tid == "a" && ok.bid == "b" && ok.timestamp == 1_700_000_000_000 && ok.needReply == 1 && ok.gateway == "RC1")
    }

    @Test func updateTopoInBothDialects() throws {
        // Current docs: domain as a string, thing_version, index "A".
        let current = DJIEnvelope(
            payload: Array(
                #"{"tid":"t","bid":"b","timestamp":1,"method":"update_topo","data":{"domain":"2","type":119,"sub_type":0,"device_secret":"s","nonce":"n","thing_version":"1.1.2","sub_devices":[{"sn":"AC","domain":"0","type":89,"sub_type":0,"index":"A","device_secret":"s","nonce":"n","thing_version":"1"}]}}"#
                    .utf8))
        let a = try #require(UpdateTopo(current))
        #expect(a.gateway?.key == "2-119-0")
        #expect(a.versionField == "thing_version")
        #expect(a.subDevices.first?.model?.name == "Matrice 350 RTK")
        #expect(a.missing.isEmpty)
        // v1.0 docs: no domain, `version` as an int, index as an int.
        let old = DJIEnvelope(
            payload: Array(
                #"{"tid":"t","bid":"b","timestamp":1,"method":"update_topo","data":{"type":144,"sub_type":0,"device_secret":"s","nonce":"n","version":1,"sub_devices":[{"sn":"AC","type":77,"sub_type":1,"index":1,"device_secret":"s","nonce":"n"}]}}"#
                    .utf8))
        let b = try #require(UpdateTopo(old))
        #expect(b.gateway?.domain == nil)
        #expect(b.gateway?.name == "DJI RC Pro Enterprise")
        #expect(b.versionField == "version" && b.thingVersion == "1")
        #expect(b.subDevices.first?.index == "1")
        #expect(b.subDevices.first?.model?.name == "Mavic 3T")
        #expect(b.missing.isEmpty)
        // Missing fields are listed.
        let thin = DJIEnvelope(payload: Array(#"{"method":"update_topo","data":{"type":119,"sub_devices":[{}]}}"#.utf8))
        let c = try #require(UpdateTopo(thin))
        #expect(c.missing.contains("tid") && c.missing.contains("data.sub_type") && c.missing.contains("data.sub_devices[0].sn"))
        #expect(UpdateTopo(DJIEnvelope(payload: Array(#"{"method":"other","data":{}}"#.utf8))) == nil)
    }

    @Test func deviceModels() {
        #expect(DeviceModel(domain: 2, type: 174, subType: 0).isRemoteController)
        #expect(!DeviceModel(domain: 0, type: 89, subType: 0).isRemoteController)
        #expect(DeviceModel(domain: 2, type: 98, subType: 0).name == nil)  // the docs' placeholder model
    }

    @Test func profilesMatchPathsAndDecodeFromJSON() throws {
        #expect(HTTPProfile.matches(["/login"], "/manage/api/v1/login"))
        #expect(HTTPProfile.matches(["/manage/api/v1/workspaces/*/devices/topologies"], "/manage/api/v1/workspaces/e3de/devices/topologies"))
        #expect(!HTTPProfile.matches(["/manage/api/v1/workspaces/*/devices/topologies"], "/manage/api/v1/workspaces/a/b/devices/topologies"))
        let p = try JSONDecoder().decode(HTTPProfile.self, from: Data(#"{"login":["/api/auth/sign-in"]}"#.utf8))
        #expect(p.login == ["/api/auth/sign-in"])
        #expect(p.tokenRefresh == HTTPProfile.reference.tokenRefresh)
    }
}
