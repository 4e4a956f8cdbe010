import Foundation

/// The JSON encoder for the typed JSON columns: compact, sorted keys, `/` not escaped, so the text reads well in
/// `sqlite3`.
enum StoreJSON {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .throw
        return encoder
    }
}
