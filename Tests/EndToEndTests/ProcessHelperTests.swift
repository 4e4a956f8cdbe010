import Foundation
import PilotTraceTestSupport
import Testing

/// The helper every end-to-end test runs processes with: a hung child fails its test at the deadline.
@Suite struct ProcessHelperTests {
    @Test func aHungChildAndWhatItStartedAreKilledAtTheDeadline() throws {
        let started = Date()
        var caught: ProcessTimedOut?
        do {
            // Prints its own pid and a background child's, then waits forever.
            _ = try runProcess("/bin/sh", ["-c", "echo $$; sleep 1000 & echo $!; wait"], timeout: 1)
        } catch let e as ProcessTimedOut {
            caught = e
        }
        let e = try #require(caught, "a child that never exits must make runProcess throw")
        #expect(Date().timeIntervalSince(started) < 10)
        #expect(e.timeout == 1)
        #expect(e.description.contains("did not exit within 1.0 s"))
        let pids = e.stdout.split(separator: "\n").compactMap { pid_t($0) }
        #expect(pids.count == 2, "it printed: \(e.stdout)")
        // Both the shell and its background sleep are gone (killed with the process group).
        for pid in pids {
            #expect(waitUntil(timeout: 5) { kill(pid, 0) != 0 && errno == ESRCH }, "process \(pid) survived")
        }
    }

    @Test func outputLargerThanAPipeDoesNotBlockAndStderrIsKept() throws {
        let r = try runProcess("/bin/sh", ["-c", "head -c 1000000 /dev/zero | tr '\\000' a; echo done >&2; exit 3"], timeout: 30)
        #expect(r.status == 3)
        #expect(r.stdout.count == 1_000_000)
        #expect(r.stderr == "done\n")
    }

    @Test func freePortsComeFromTheKernel() throws {
        let a = try freeLoopbackPort(), b = try freeLoopbackPort()
        #expect(a >= 1024 && b >= 1024)
    }
}
