import Foundation
import PilotTraceStore
import Testing

@testable import PilotTraceReport

/// How frames and times read in the listings, the reports and the JSON outputs.
@Suite struct FramePlaceTests {
    let one = [CaptureRow(ordinal: 0, path: "/captures/a.pcapng", sha256: "a", format: "pcapng", compressed: false)]
    let two = [
        CaptureRow(ordinal: 0, path: "/captures/a.pcapng", sha256: "a", format: "pcapng", compressed: false),
        CaptureRow(ordinal: 1, path: "/captures/b.pcapng", sha256: "b", format: "pcapng", compressed: false),
    ]

    @Test func framesReadAsWiresharkNumbersThem() {
        #expect(FramePlace(ordinal: 0, first: 23, last: 23).text(one) == "frame 23")
        #expect(FramePlace(ordinal: 0, first: 4, last: 6).text(one) == "frames 4–6")
        #expect(FramePlace(ordinal: 0, first: 34, last: nil).text(one) == "frames 34–?")
        #expect(FramePlace(ordinal: nil, first: nil, last: nil).text(one) == "")
        // With several files the file's name comes first.
        #expect(FramePlace(ordinal: 1, first: 3, last: 3).text(two) == "b.pcapng frame 3")
    }

    @Test func theJSONKeysAreAlwaysThere() {
        let known = FramePlace(ordinal: 1, first: 3, last: 5).json(two)
        #expect(known["capture_file"] as? String == "/captures/b.pcapng")
        #expect(known["first_frame"] as? Int == 3 && known["last_frame"] as? Int == 5)
        let none = FramePlace(ordinal: nil, first: nil, last: nil).json(two)
        #expect(Set(none.keys) == ["capture_file", "first_frame", "last_frame"])
        #expect(none.values.allSatisfy { $0 is NSNull })
    }

    @Test func timesAreRFC3339WithMicrosecondsAndAnEpochTwin() {
        let t = 1_795_769_088.899689
        #expect(TimeText.rfc3339(t) == "2026-11-27T08:44:48.899689Z")
        let o = TimeText.json("start", t)
        #expect(o["start"] as? String == "2026-11-27T08:44:48.899689Z")
        #expect(o["start_epoch"] as? Double == 1_795_769_088.899689)
        #expect(TimeText.json("end", nil).values.allSatisfy { $0 is NSNull })
        #expect(TimeText.rfc3339(0.0000004) == "1970-01-01T00:00:00.000000Z")
        #expect(TimeText.rfc3339(-0.5) == "1969-12-31T23:59:59.500000Z")
    }

    @Test func detailTimesReadTheSameWay() {
        let detail = TimeText.presentingTimes(["issued_at": NSNumber(value: 1_795_769_088.985283), "keep_alive": 60]) as! [String: Any]
        #expect(detail["issued_at"] as? String == "2026-11-27T08:44:48.985283Z")
        #expect(detail["issued_at_epoch"] as? Double == 1_795_769_088.985283)
        #expect(detail["keep_alive"] as? Int == 60)
    }

    @Test func midnightIsCrossedWhenTheUTCDateChanges() {
        let beforeMidnight = 1_795_823_998.0  // 2026-11-27T23:59:58Z
        #expect(!TimeText.crossesMidnight([beforeMidnight, beforeMidnight + 1.9]))
        #expect(TimeText.crossesMidnight([beforeMidnight, beforeMidnight + 4]))
        #expect(TimeText.day(beforeMidnight + 4) == "2026-11-28")
        #expect(!TimeText.crossesMidnight([]))
    }
}
