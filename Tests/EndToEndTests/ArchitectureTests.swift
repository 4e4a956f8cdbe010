import Foundation
import PilotTraceTestSupport
import Testing

/// The package's shape, as docs/architecture.md states it: Package.swift declares exactly the modules each target's
/// sources import, the pure core and production code keep their distance from I/O and from the lab, and the document
/// says what Package.swift says.
@Suite struct ArchitectureTests {
    /// Modules of the toolchain: no target declares them.
    static let toolchainModules: Set<String> = [
        "Swift", "_Concurrency", "_StringProcessing", "RegexBuilder", "Synchronization", "Observation", "Distributed",
        "Foundation", "FoundationEssentials", "FoundationInternationalization", "FoundationNetworking", "FoundationXML",
        "CoreFoundation", "Dispatch", "Glibc", "Musl", "Darwin", "Android", "WinSDK", "ucrt", "os", "Cxx", "CxxStdlib",
        "Testing", "XCTest",
    ]
    /// PURE targets (docs/architecture.md): no I/O, so they may import only each other and zlib (inflates in memory).
    static let pureTargets: Set<String> = [
        "PilotTraceWire", "PilotTraceProtocols", "PilotTraceFlow", "PilotTraceReplay", "PilotTraceLab",
    ]
    /// Computation without I/O the pure core may use: zlib (inflating bodies) and swift-crypto (digests; TLS later).
    static let pureMayAlsoImport: Set<String> = ["CZlib", "Crypto"]
    static let labTargets: Set<String> = ["PilotTraceLab", "PilotTraceLabServices"]
    static let testSupport = "PilotTraceTestSupport"

    static let root = TestPaths.packageRoot

    static func manifest(_ relativePath: String = "Package.swift") throws -> Manifest {
        try Manifest(parsing: String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8))
    }

    /// Every module the Swift files below a target's folder import, with the files that import it.
    static func imports(of target: Manifest.Target, packageRoot: URL = root) throws -> [String: [String]] {
        var found: [String: [String]] = [:]
        let folder = packageRoot.appendingPathComponent(target.folder)
        guard let files = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil) else { return [:] }
        for case let file as URL in files where file.pathExtension == "swift" {
            for module in SourceImports.modules(in: try String(contentsOf: file, encoding: .utf8)) {
                found[module, default: []].append(file.path.replacingOccurrences(of: packageRoot.path + "/", with: ""))
            }
        }
        return found
    }

    /// What is wrong with a target's dependency list: imports it does not declare (toolchain modules aside), and
    /// declared dependencies none of its files imports.
    static func dependencyProblems(of target: Manifest.Target, packageRoot: URL = root) throws -> [String] {
        let imported = try imports(of: target, packageRoot: packageRoot)
        let declared = Set(target.dependencies.map(\.name))
        var problems: [String] = []
        for (module, files) in imported.sorted(by: { $0.key < $1.key })
        where !toolchainModules.contains(module) && !declared.contains(module) {
            problems.append("\(target.name) does not declare \(module), imported by \(files.sorted().joined(separator: ", "))")
        }
        for module in declared.subtracting(imported.keys).sorted() {
            problems.append("\(target.name) declares \(module) but none of its files imports it")
        }
        return problems
    }

    // MARK: Package.swift against the sources

    @Test func everyImportIsDeclaredAndEveryDeclaredDependencyImported() throws {
        let manifest = try Self.manifest()
        var scanned = 0
        for target in manifest.targets where target.kind != .systemLibrary {
            scanned += try Self.imports(of: target).values.joined().count
            for problem in try Self.dependencyProblems(of: target) { Issue.record("\(problem)") }
        }
        // The checks above pass vacuously if the parser or the file walk finds nothing.
        #expect(manifest.targets.count >= 30, "Package.swift parsed to \(manifest.targets.map(\.name))")
        #expect(scanned >= 300, "only \(scanned) imports found")
    }

    @Test func everySourceFolderIsATarget() throws {
        let manifest = try Self.manifest()
        let folders = Set(manifest.targets.map(\.folder))
        for top in ["Sources", "Tests"] {
            let entries = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent(top).path)
            for entry in entries.sorted() {
                let folder = "\(top)/\(entry)"
                let url = Self.root.appendingPathComponent(folder)
                let holdsCode =
                    FileManager.default.enumerator(atPath: url.path)?.contains {
                        ($0 as? String).map { $0.hasSuffix(".swift") || $0.hasSuffix("module.modulemap") } ?? false
                    } ?? false
                if holdsCode { #expect(folders.contains(folder), "\(folder) holds code but is no target of Package.swift") }
            }
        }
    }

    // MARK: The rules

    @Test func thePureTargetsImportNoIO() throws {
        for target in try Self.manifest().targets where Self.pureTargets.contains(target.name) {
            for dependency in target.dependencies
            where !Self.pureTargets.contains(dependency.name) && !Self.pureMayAlsoImport.contains(dependency.name) {
                Issue.record("\(target.name) is pure but depends on \(dependency.name)")
            }
        }
    }

    @Test func productionCodeNeverDependsOnTheLabOrTheTestSupport() throws {
        let manifest = try Self.manifest()
        let forbidden = Self.labTargets.union([Self.testSupport])
        for target in manifest.targets where target.kind == .regular && !forbidden.contains(target.name) {
            for reached in Set(manifest.closure(of: target.name)).intersection(forbidden).sorted() {
                Issue.record("\(target.name) depends on \(reached) (directly or through a dependency)")
            }
        }
        // The lab's simulator reaches the clients it shares with the replay, not the other way round.
        #expect(manifest.closure(of: "PilotTraceReplayRunner").contains("PilotTraceClients"))
        #expect(manifest.closure(of: "PilotTraceLabServices").contains("PilotTraceClients"))
    }

    @Test func theBenchmarksPackageUsesOnlyProductsThatExist() throws {
        let products = Set(try Self.manifest().products.map(\.name))
        let benchmarks = try Self.manifest("Benchmarks/Package.swift")
        let used = benchmarks.targets.flatMap(\.dependencies).filter { $0.package == "PilotTrace" }.map(\.name)
        #expect(!used.isEmpty)
        for name in used {
            #expect(products.contains(name), "Benchmarks/Package.swift uses the product \(name), which PilotTrace no longer has")
        }
    }

    // MARK: docs/architecture.md against Package.swift

    static func architectureDoc() throws -> String {
        try String(contentsOf: root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
    }

    @Test func theTargetTablesListEachTargetsImports() throws {
        let manifest = try Self.manifest()
        let rows = ArchitectureDoc.tableRows(in: try Self.architectureDoc(), section: "## Targets")
        let documented = Dictionary(rows.map { ($0.name, $0.imports) }, uniquingKeysWith: { a, _ in a })
        #expect(rows.count == documented.count, "a target has two rows")
        for target in manifest.targets {
            guard let imports = documented[target.name] else {
                Issue.record("docs/architecture.md has no row for \(target.name)")
                continue
            }
            let declared = Set(target.dependencies.map(\.name))
            #expect(
                imports == declared,
                "docs/architecture.md: \(target.name) may import \(imports.sorted()), Package.swift declares \(declared.sorted())")
        }
        for name in Set(documented.keys).subtracting(manifest.targets.map(\.name)).sorted() {
            Issue.record("docs/architecture.md names \(name), which is no target")
        }
    }

    @Test func theGraphIsPackageSwifts() throws {
        let manifest = try Self.manifest()
        let names = Set(manifest.targets.map(\.name))
        let graph = ArchitectureDoc.mermaidEdges(in: try Self.architectureDoc())
        #expect(!graph.isEmpty, "docs/architecture.md has no mermaid graph")
        for target in manifest.targets where target.kind != .test && target.name != Self.testSupport {
            let edges = Set(target.dependencies.map(\.name).filter(names.contains))
            #expect(
                graph[target.name, default: []] == edges,
                "the graph gives \(target.name) → \(graph[target.name, default: []].sorted()), Package.swift \(edges.sorted())")
        }
        for name in Set(graph.keys).subtracting(names) { Issue.record("the graph has an edge from \(name), which is no target") }
    }

    @Test func theProductsAreTheDocumentedOnes() throws {
        let products = Set(try Self.manifest().products.map(\.name))
        let documented = Set(ArchitectureDoc.tableRows(in: try Self.architectureDoc(), section: "## Products").map(\.name))
        #expect(products == documented)
        #expect(products.contains("pilottrace"))
    }

    // MARK: The parsers themselves

    @Test func theManifestParserReadsEachForm() throws {
        let m = try Manifest(
            parsing: """
                let package = Package(name: "X", // a comment with .target(name: "Nope")
                    products: [.executable(name: "x", targets: ["x"]), .library(name: "A", targets: ["A"])],
                    dependencies: [.package(url: "https://example.invalid/n", from: "1.0.0")],
                    targets: [
                        .systemLibrary(name: "CLib", providers: [.apt(["lib-dev"])]),
                        /* .target(name: "Hidden"), */
                        .target(name: "A", dependencies: ["CLib", .product(name: "NIOCore", package: "n"), .target(name: "B"),
                                                          .byName(name: "C")]),
                        .target(name: "B"),
                        .target(name: "S", path: "Tests/S"),
                        .executableTarget(name: "x", dependencies: [
                            // the shell
                            "A", .product(name: "P", package: "p", condition: .when(platforms: [.linux])),
                        ]),
                        .testTarget(name: "ATests", dependencies: ["A", "S"], exclude: ["a (1).html"]),
                    ]
                )
                """)
        #expect(m.targets.map(\.name) == ["CLib", "A", "B", "S", "x", "ATests"])
        #expect(m.targets.map(\.kind) == [.systemLibrary, .regular, .regular, .regular, .executable, .test])
        #expect(m.targets.map(\.folder) == ["Sources/CLib", "Sources/A", "Sources/B", "Tests/S", "Sources/x", "Tests/ATests"])
        #expect(
            m.targets[1].dependencies
                == [.init(name: "CLib"), .init(name: "NIOCore", package: "n"), .init(name: "B"), .init(name: "C")])
        #expect(m.targets[4].dependencies == [.init(name: "A"), .init(name: "P", package: "p")])
        #expect(m.products.map(\.name) == ["x", "A"])
        #expect(m.closure(of: "x") == ["A", "CLib", "B", "C"])
    }

    @Test func theImportScannerSeesEachForm() {
        let source =
            "import Foundation\n@testable import A\n@preconcurrency import B\nimport struct C.Thing\npublic import D\n"
            + "internal import E.Sub\n  import F\n// import G\n/// import H\nlet s = \"import I\"\n#if canImport(J)\nimport J\n#endif\n"
        #expect(SourceImports.modules(in: source) == ["Foundation", "A", "B", "C", "D", "E", "F", "J"])
    }

    @Test func anUndeclaredImportAndAnUnusedDependencyAreFound() throws {
        // Given targets as Package.swift declares them, and sources of our own for them in a scratch package root:
        let manifest = try Self.manifest()
        let wire = try #require(manifest.targets.first { $0.name == "PilotTraceWire" })
        let protocols = try #require(manifest.targets.first { $0.name == "PilotTraceProtocols" })
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("architecture-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        func write(_ source: String, to target: Manifest.Target) throws {
            let folder = scratch.appendingPathComponent(target.folder)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try source.write(to: folder.appendingPathComponent("File.swift"), atomically: true, encoding: .utf8)
        }
        // the pure Wire importing NIOCore and the store (and no longer swift-crypto), Protocols no longer importing zlib or swift-crypto,
        try write("import Foundation\n@preconcurrency import NIOCore\nimport PilotTraceStore\n", to: wire)
        try write("import PilotTraceWire\n", to: protocols)
        // then each is a problem, and nothing else is.
        #expect(
            try Self.dependencyProblems(of: wire, packageRoot: scratch).sorted() == [
                "PilotTraceWire declares Crypto but none of its files imports it",
                "PilotTraceWire does not declare NIOCore, imported by \(wire.folder)/File.swift",
                "PilotTraceWire does not declare PilotTraceStore, imported by \(wire.folder)/File.swift",
            ])
        #expect(
            try Self.dependencyProblems(of: protocols, packageRoot: scratch).sorted() == [
                "PilotTraceProtocols declares CZlib but none of its files imports it",
                "PilotTraceProtocols declares Crypto but none of its files imports it",
            ])
    }
}

extension ArchitectureTests {
    /// A Package.swift read as text: its targets (name, kind, folder, dependencies) and products. Enough of the manifest
    /// grammar for this package's manifests: `.target(…)` entries with string, `.product`, `.target` and `.byName`
    /// dependencies; comments are skipped, strings are plain (no raw or multi-line strings).
    struct Manifest {
        struct Dependency: Equatable {
            var name: String
            var package: String? = nil
        }

        struct Target {
            enum Kind: Equatable { case regular, test, executable, systemLibrary }
            var name: String
            var kind: Kind
            var path: String?
            var dependencies: [Dependency]
            /// The folder of its sources, relative to the package root.
            var folder: String { path ?? "\(kind == .test ? "Tests" : "Sources")/\(name)" }
        }

        struct Product {
            var name: String
            var targets: [String]
        }

        var targets: [Target] = []
        var products: [Product] = []

        init(parsing text: String) throws {
            let chars = Array(Self.withoutComments(text))
            let kinds: [(String, Target.Kind?)] = [
                (".target(", .regular), (".testTarget(", .test), (".executableTarget(", .executable),
                (".systemLibrary(", .systemLibrary), (".library(", nil), (".executable(", nil),
            ]
            var i = 0
            var inString = false
            while i < chars.count {
                if chars[i] == "\\" && inString { i += 2; continue }
                if chars[i] == "\"" { inString.toggle() }
                guard !inString, chars[i] == ".",
                    let (opener, kind) = kinds.first(where: { Self.starts(chars, at: i, with: $0.0) })
                else { i += 1; continue }
                let open = i + opener.count - 1
                let close = try Self.partner(chars, of: open)
                let fields = Self.fields(String(chars[(open + 1)..<close]))
                guard let name = fields["name"].flatMap(Self.stringLiteral) else { throw ParseError("no name: \(String(chars[i...close]))") }
                if let kind {
                    targets.append(
                        Target(
                            name: name, kind: kind, path: fields["path"].flatMap(Self.stringLiteral),
                            dependencies: try fields["dependencies"].map(Self.dependencies) ?? []))
                } else {
                    products.append(Product(name: name, targets: fields["targets"].map(Self.items)?.compactMap(Self.stringLiteral) ?? []))
                }
                i = close + 1
            }
        }

        /// The targets `name` depends on, directly or not (the order found, each once).
        func closure(of name: String) -> [String] {
            var reached: [String] = []
            var queue = [name]
            while !queue.isEmpty {
                let next = queue.removeFirst()
                for d in targets.first(where: { $0.name == next })?.dependencies ?? [] where !reached.contains(d.name) {
                    if targets.contains(where: { $0.name == d.name }) || d.package == nil {
                        reached.append(d.name)
                        queue.append(d.name)
                    }
                }
            }
            return reached
        }

        struct ParseError: Error, CustomStringConvertible {
            var description: String
            init(_ d: String) { description = "Package.swift: \(d)" }
        }

        static func starts(_ chars: [Character], at i: Int, with s: String) -> Bool {
            let p = Array(s)
            return i + p.count <= chars.count && Array(chars[i..<(i + p.count)]) == p
        }

        /// The text without `//` and `/* */` comments (outside strings).
        static func withoutComments(_ text: String) -> String {
            let c = Array(text)
            var out: [Character] = []
            var i = 0
            var inString = false
            while i < c.count {
                if inString {
                    if c[i] == "\\", i + 1 < c.count { out += [c[i], c[i + 1]]; i += 2; continue }
                    if c[i] == "\"" || c[i] == "\n" { inString = false }
                } else if starts(c, at: i, with: "//") {
                    while i < c.count && c[i] != "\n" { i += 1 }
                    continue
                } else if starts(c, at: i, with: "/*") {
                    i += 2
                    while i < c.count && !starts(c, at: i, with: "*/") { i += 1 }
                    i += 2
                    continue
                } else if c[i] == "\"" {
                    inString = true
                }
                out.append(c[i])
                i += 1
            }
            return String(out)
        }

        /// The index of the bracket closing the one at `open`, brackets inside strings skipped.
        static func partner(_ c: [Character], of open: Int) throws -> Int {
            var depth = 0
            var inString = false
            var i = open
            while i < c.count {
                if inString {
                    if c[i] == "\\" { i += 2; continue }
                    if c[i] == "\"" { inString = false }
                } else {
                    switch c[i] {
                    case "\"": inString = true
                    case "(", "[": depth += 1
                    case ")", "]":
                        depth -= 1
                        if depth == 0 { return i }
                    default: break
                    }
                }
                i += 1
            }
            throw ParseError("unbalanced bracket at offset \(open)")
        }

        /// `a, b(c, d), [e, f]` split at the commas outside brackets and strings, each item trimmed, empty ones dropped.
        static func items(_ text: String) -> [String] {
            var inner = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if inner.hasPrefix("["), inner.hasSuffix("]") { inner = String(inner.dropFirst().dropLast()) }
            var result: [String] = []
            var current = ""
            var depth = 0
            var inString = false
            var escaped = false
            for ch in inner {
                if inString {
                    if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { inString = false }
                } else if ch == "\"" {
                    inString = true
                } else if ch == "(" || ch == "[" {
                    depth += 1
                } else if ch == ")" || ch == "]" {
                    depth -= 1
                } else if ch == "," && depth == 0 {
                    result.append(current)
                    current = ""
                    continue
                }
                current.append(ch)
            }
            result.append(current)
            return result.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        }

        /// `name: "A", path: "B", dependencies: [...]`: each labelled argument's text, by label.
        static func fields(_ arguments: String) -> [String: String] {
            var result: [String: String] = [:]
            for item in items(arguments) {
                guard let colon = item.firstIndex(of: ":") else { continue }
                let label = item[..<colon].trimmingCharacters(in: .whitespaces)
                guard label.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { continue }
                result[label] = result[label] ?? String(item[item.index(after: colon)...]).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return result
        }

        static func stringLiteral(_ text: String) -> String? {
            let t = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard t.count >= 2, t.hasPrefix("\""), t.hasSuffix("\"") else { return nil }
            return String(t.dropFirst().dropLast())
        }

        static func dependencies(_ list: String) throws -> [Dependency] {
            try items(list).map { item in
                if let name = stringLiteral(item) { return Dependency(name: name) }
                guard let open = item.firstIndex(of: "("), item.hasSuffix(")") else { throw ParseError("dependency \(item)") }
                let kind = item[..<open]
                let fields = fields(String(item[item.index(after: open)..<item.index(before: item.endIndex)]))
                guard [".product", ".target", ".byName"].contains(kind), let name = fields["name"].flatMap(stringLiteral) else {
                    throw ParseError("dependency \(item)")
                }
                return Dependency(name: name, package: kind == ".product" ? fields["package"].flatMap(stringLiteral) : nil)
            }
        }
    }

    /// The modules a Swift file imports: `import X`, `@testable import X`, `public import X`, `import struct X.Y` … at the
    /// start of a line (a submodule counts as its module). Lines that are comments are skipped.
    enum SourceImports {
        static let modifiers: Set<Substring> = ["public", "package", "internal", "fileprivate", "private"]
        static let kinds: Set<Substring> = ["typealias", "struct", "class", "enum", "protocol", "let", "var", "func"]

        static func modules(in source: String) -> [String] {
            var found: [String] = []
            for line in source.split(separator: "\n") where line.contains("import") {
                // Attributes (`@testable`, `@preconcurrency`, `@_spi(X)`), an access modifier, `import`, a kind, the module.
                var words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })[...]
                while let w = words.first, w.hasPrefix("@") { words.removeFirst() }
                if let w = words.first, modifiers.contains(w) { words.removeFirst() }
                guard words.popFirst() == "import" else { continue }
                if let w = words.first, kinds.contains(w) { words.removeFirst() }
                guard let path = words.first else { continue }
                let module = String(path.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
                if !module.isEmpty, !found.contains(module) { found.append(module) }
            }
            return found
        }
    }

    /// The parts of docs/architecture.md that are checked against Package.swift.
    enum ArchitectureDoc {
        struct Row {
            var name: String
            /// The backticked names in the second column.
            var imports: Set<String>
        }

        /// The table rows (first cell a backticked name) between `heading` and the next heading of its level.
        static func tableRows(in doc: String, section heading: String) -> [Row] {
            var rows: [Row] = []
            var inside = false
            for line in doc.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("## ") { inside = line == heading; continue }
                guard inside, line.hasPrefix("|") else { continue }
                let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().map(String.init)
                guard let first = cells.first, let name = backticked(first).first else { continue }
                rows.append(Row(name: name, imports: Set(cells.count > 1 ? backticked(cells[1]) : [])))
            }
            return rows
        }

        /// `A --> B & C` lines of the ```mermaid block: each node's edges.
        static func mermaidEdges(in doc: String) -> [String: Set<String>] {
            var edges: [String: Set<String>] = [:]
            var inside = false
            for line in doc.split(separator: "\n", omittingEmptySubsequences: false) {
                let t = line.trimmingCharacters(in: .whitespaces)
                if t.hasPrefix("```") { inside = t == "```mermaid"; continue }
                guard inside, let arrow = t.range(of: "-->") else { continue }
                let from = t[..<arrow.lowerBound].trimmingCharacters(in: .whitespaces)
                let to = t[arrow.upperBound...].split(separator: "&").map { $0.trimmingCharacters(in: .whitespaces) }
                edges[from, default: []].formUnion(to)
            }
            return edges
        }

        static func backticked(_ text: String) -> [String] {
            text.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
        }
    }
}
