import Foundation
import PilotTraceWire
import Testing

@testable import PilotTraceStore

@Suite("SHA-256 (FIPS 180-4)")
struct FileDigestTests {
    @Test(
        "Known vectors in memory",
        arguments: [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
        ])
    func vectors(input: String, expected: String) {
        #expect(FileDigest.sha256(bytes: Array(input.utf8)) == expected)
    }

    @Test("Padding boundaries: 55, 56, 63, 64 and 65 bytes")
    func paddingBoundaries() {
        let expected = [
            55: "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072",
            56: "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e",
            63: "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2",
            64: "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c",
            65: "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9",
        ]
        for (count, digest) in expected {
            #expect(
                FileDigest.sha256(bytes: [UInt8](repeating: UInt8(ascii: "x"), count: count)) == digest,
                "\(count) bytes")
        }
    }

    @Test("Fed in uneven pieces, the digest is the same as in one piece")
    func incremental() {
        let bytes = (0..<1_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var hasher = SHA256()
        var index = 0
        for size in [1, 63, 2, 64, 65, 0, 128, 300] {
            let end = min(index + size, bytes.count)
            hasher.update(bytes[index..<end])
            index = end
        }
        hasher.update(bytes[index...])
        let hex = hasher.finalize().map { String(format: "%02x", $0) }.joined()
        #expect(hex == FileDigest.sha256(bytes: bytes))
    }

    @Test("A file of 1,000,000 × 'a' and a file over three 1 MiB chunks")
    func files() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let millionA = folder.path("a.bin")
        try Data(repeating: UInt8(ascii: "a"), count: 1_000_000).write(to: URL(fileURLWithPath: millionA))
        #expect(
            try FileDigest.sha256(path: millionA)
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")

        let large = folder.path("large.bin")
        let count = 3 * FileDigest.chunkSize + 7
        try Data((0..<count).map { UInt8($0 % 251) }).write(to: URL(fileURLWithPath: large))
        #expect(
            try FileDigest.sha256(path: large)
                == "f578a61853ca2f4272dba551bd868420e22302fbb6d6dfc0cc80da1d2c7b779f")

        let empty = folder.path("empty.bin")
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(
            try FileDigest.sha256(path: empty)
                == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test(
        "Files (read in 1 MiB chunks) and bytes in memory agree, across chunk and block boundaries",
        arguments: [0, 1, 55, 64, 1_000, 1 << 20, (1 << 20) + 63, 2 * (1 << 20) + 1])
    func fileAndMemoryAgree(count: Int) throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let path = folder.path("random.bin")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(try FileDigest.sha256(path: path) == FileDigest.sha256(bytes: bytes))
    }

    @Test("A folder is an error naming it")
    func folderIsAnError() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let error = #expect(throws: PilotTraceStoreError.self) { try FileDigest.sha256(path: folder.path("")) }
        #expect(error?.kind == .io)
        #expect(error?.description.contains("cannot read file to hash it") == true)
    }

    @Test("A missing file is an error naming it")
    func missingFile() throws {
        let folder = try TemporaryFolder()
        defer { folder.remove() }
        let path = folder.path("nope.pcap")
        let error = #expect(throws: PilotTraceStoreError.self) { try FileDigest.sha256(path: path) }
        #expect(error?.kind == .io)
        #expect(error?.description.contains(path) == true)
    }
}
