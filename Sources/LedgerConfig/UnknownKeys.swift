import Yams

/// Finds the keys of a YAML configuration file that its Swift type does not read.
///
/// The decoders skip a key they do not know, so a misspelt one (`conections_max`) used to leave its
/// setting at the default without a word. The loaders now refuse such a file and name the key.
///
/// The check needs no list of settings of its own: the decoded value is encoded again, and a key
/// the file has at some path is unknown when the encoding has none there. Every section decodes
/// with synthesized `Codable`, so a key that was read is written back under the same name, with
/// two exceptions the walk allows for: a key whose value is null (an optional left empty, which is
/// not written back) and sequences of scalars (their elements have no keys).
public enum UnknownKeys {
    /// The dotted paths (`operations.conections_max`, `anomaly.rules[1].windows`) of keys in `yaml`
    /// that `decoded`, the value decoded from it, does not hold; empty when there are none.
    public static func find(in yaml: String, decoded: some Encodable) throws -> [String] {
        guard let given = try Yams.compose(yaml: yaml) else { return [] }
        let read = try Yams.compose(yaml: YAMLEncoder().encode(decoded))
        var unknown: [String] = []
        walk(given, read, path: "", into: &unknown)
        return unknown
    }

    private static func walk(_ given: Node, _ read: Node?, path: String, into unknown: inout [String]) {
        switch given {
        case .mapping(let mapping):
            for (keyNode, value) in mapping {
                let key = keyNode.string ?? "\(keyNode)"
                let here = path.isEmpty ? key : path + "." + key
                if value.null != nil { continue }
                guard let readValue = read?.mapping?[key] else {
                    unknown.append(here)
                    continue
                }
                walk(value, readValue, path: here, into: &unknown)
            }
        case .sequence(let sequence):
            guard let readSequence = read?.sequence, readSequence.count == sequence.count else { return }
            for (index, element) in sequence.enumerated() {
                walk(element, readSequence[index], path: path + "[\(index)]", into: &unknown)
            }
        default:
            return
        }
    }

    /// The loaders' message for `paths`, found in `file`.
    static func message(_ paths: [String], file: String) -> String {
        let listed = paths.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
        let more = paths.count > 5 ? " and \(paths.count - 5) more" : ""
        let noun = paths.count == 1 ? "key" : "keys"
        return
            "\(file) has unknown \(noun) \(listed)\(more): not a setting (misspelt, or not at this level), so it would be ignored; correct or remove it"
    }
}
