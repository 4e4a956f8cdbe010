import Foundation
import Testing

@testable import PilotTraceStore

@Suite("PostgreSQL URLs and placeholders")
struct PostgresLocationTests {
    @Test("Both schemes, every part, percent-decoded")
    func parses() throws {
        let full = try PostgresLocation(url: "postgresql://pilot:s%40cr%3At%2F@db.example.com:6543/trace%20db?sslmode=require")
        #expect(
            full
                == PostgresLocation(
                    user: "pilot", password: "s@cr:t/", host: "db.example.com", port: 6543,
                    database: "trace db", tls: .require))

        let short = try PostgresLocation(url: "postgres://pilot@localhost/trace")
        #expect(short.user == "pilot" && short.password == nil && short.host == "localhost")
        #expect(short.port == 5432 && short.database == "trace" && short.tls == .disable)

        // A password may hold ":" and "?" unescaped (the user info ends at the first "@"), and be empty.
        #expect(try PostgresLocation(url: "postgresql://u:a:b?c@h/d").password == "a:b?c")
        #expect(try PostgresLocation(url: "postgresql://u:@h/d").password == "")

        let v6 = try PostgresLocation(url: "POSTGRESQL://u:p@[::1]:5433/d?sslmode=verify-full&sslrootcert=%2Ftmp%2Froot.crt")
        #expect(v6.host == "::1" && v6.port == 5433)
        #expect(v6.tls == .verifyFull && v6.rootCertificatePath == "/tmp/root.crt")

        for mode in PostgresLocation.TLSMode.allCases {
            #expect(try PostgresLocation(url: "postgresql://u@h/d?sslmode=\(mode.rawValue)").tls == mode)
        }
    }

    @Test("isURL tells URLs from SQLite paths")
    func isURL() {
        #expect(PostgresLocation.isURL("postgresql://u@h/d"))
        #expect(PostgresLocation.isURL("Postgres://u@h/d"))
        #expect(PostgresLocation.isURL("postgresql://"))  // meant as one; init(url:) says what is missing
        #expect(!PostgresLocation.isURL("./pilottrace.sqlite"))
        #expect(!PostgresLocation.isURL("postgresql.sqlite"))
        #expect(!PostgresLocation.isURL("/var/db/postgres://x"))
        #expect(!PostgresLocation.isURL(""))
    }

    @Test("The redacted URL hides the password, and parses back to the same place")
    func redacted() throws {
        let location = try PostgresLocation(url: "postgres://pilot:hunter2@[fe80::1]/trace?sslmode=require")
        #expect(location.redacted == "postgresql://pilot:***@[fe80::1]:5432/trace?sslmode=require")
        #expect(location.description == location.redacted)
        #expect(!String(reflecting: location).contains("hunter2"))
        var dumped = ""
        dump(location, to: &dumped)
        #expect(!dumped.contains("hunter2"))

        let odd = PostgresLocation(user: "a b@c", password: "x", host: "h", port: 1, database: "d/e")
        #expect(odd.redacted == "postgresql://a%20b%40c:***@h:1/d%2Fe")
        var back = try PostgresLocation(url: odd.redacted)
        back.password = "x"
        #expect(back == odd)
        #expect(PostgresLocation(user: "u", host: "h", database: "d").redacted == "postgresql://u@h:5432/d")
    }

    @Test(
        "Bad URLs are refused with cannotOpen, saying why, and never show the password",
        arguments: [
            ("mysql://u:secret@h/d", "does not start with"),
            ("postgresql://h/d", "no user"),
            ("postgresql://:secret@h/d", "no user"),
            ("postgresql://u:secret@/d", "no host"),
            ("postgresql://u:secret@h", "no database"),
            ("postgresql://u:secret@h/", "no database"),
            ("postgresql://u:secret@h:/d", "port"),
            ("postgresql://u:secret@h:99999/d", "port"),
            ("postgresql://u:secret@h:54x/d", "port"),
            ("postgresql://u:secret@h1,h2/d", "several hosts"),
            ("postgresql://u:secret@[::1/d", "closing ]"),
            ("postgresql://u:secret@h/d?sslmode=allow", "sslmode=allow is not supported"),
            ("postgresql://u:secret@h/d?connect_timeout=5", "connect_timeout"),
            ("postgresql://u:secret@h/d?sslmode", "has no value"),
            ("postgresql://u%zz:secret@h/d", "%-escape"),
        ])
    func bad(_ url: String, _ why: String) {
        let error = #expect(throws: PilotTraceStoreError.self) { try PostgresLocation(url: url) }
        #expect(error?.kind == .cannotOpen)
        #expect(error?.message.contains(why) == true, "\(error?.message ?? "")")
        #expect(error?.description.contains("secret") == false, "\(error?.description ?? "")")
        #expect(error?.message.contains("postgresql://user[:password]@host[:port]/database") == true)
    }

    @Test("? becomes $1, $2 … outside strings, identifiers, dollar quotes and comments")
    func placeholders() {
        func rewrite(_ sql: String) -> String { PostgresLink.numberedPlaceholders(sql).sql }
        #expect(PostgresLink.numberedPlaceholders("SELECT 1").count == 0)
        #expect(PostgresLink.numberedPlaceholders("SELECT ?, ?").sql == "SELECT $1, $2")
        #expect(PostgresLink.numberedPlaceholders("SELECT ?, ?").count == 2)
        #expect(rewrite("SELECT '?', ?, 'it''s ?', ?") == "SELECT '?', $1, 'it''s ?', $2")
        #expect(rewrite(#"SELECT "a?b", ? FROM "t""?""#) == #"SELECT "a?b", $1 FROM "t""?""#)
        #expect(rewrite("SELECT E'\\'?', ?") == "SELECT E'\\'?', $1")
        #expect(rewrite("SELECT 'a\\', ?") == "SELECT 'a\\', $1")  // a plain string has no backslash escapes
        #expect(rewrite("SELECT $$?$$, $tag$ ? $$ ? $tag$, ?") == "SELECT $$?$$, $tag$ ? $$ ? $tag$, $1")
        #expect(rewrite("SELECT ? -- why?\n, ?") == "SELECT $1 -- why?\n, $2")
        #expect(rewrite("SELECT /* a /* nested? */ b? */ ?") == "SELECT /* a /* nested? */ b? */ $1")
        #expect(rewrite("SELECT a$b, ?, $1x") == "SELECT a$b, $1, $1x")
        #expect(rewrite("SELECT 'unterminated ?") == "SELECT 'unterminated ?")
        #expect(rewrite("SELECT ?::bigint, 'é?', ?") == "SELECT $1::bigint, 'é?', $2")
    }

    @Test("COPY text escapes what it must")
    func copyText() {
        let chunks = PostgresLink.copyText([
            [.integer(-3), .real(0.1), .text("a\tb\nc\\d\re"), .blob(Data([0x00, 0xAB, 0xFF])), .null],
            [.real(.infinity), .real(-.infinity), .real(.nan), .text(""), .blob(Data())],
        ])
        let text = chunks.map { String(buffer: $0) }.joined()
        #expect(text == "-3\t0.1\ta\\tb\\nc\\\\d\\re\t\\\\x00abff\t\\N\nInfinity\t-Infinity\tNaN\t\t\\\\x\n")
        let many = PostgresLink.copyText(Array(repeating: [.text(String(repeating: "x", count: 1000))], count: 3000), chunkSize: 1 << 20)
        #expect(many.count == 3)
        #expect(many.map(\.readableBytes).reduce(0, +) == 3000 * 1001)
    }
}
