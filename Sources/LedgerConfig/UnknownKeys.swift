import Yams

/// Finds the keys of a YAML configuration file that its Swift type does not read, and keys given
/// twice in one mapping.
///
/// The decoders skip a key they do not know, so a misspelt one (`conections_max`) used to leave its
/// setting at the default without a word; and of a key given twice only the last counts, so a
/// section written twice lost the first without a word. The loaders now refuse such a file and name
/// the keys.
///
/// The check needs no list of settings of its own: the decoded value is encoded again, and a key
/// the file has at some path is unknown when the encoding has none there. Every section decodes
/// with synthesized `Codable`, so a key that was read is written back under the same name. The walk
/// allows for what the decoder allows: a key whose value is null (an optional left empty, which is
/// not written back), merge keys (`<<: *anchor`, whose keys count as the mapping's own unless it
/// gives them itself) and sequences of scalars (their elements have no keys).
public enum UnknownKeys {
    public struct Problems: Equatable {
        /// Dotted paths (`operations.conections_max`, `anomaly.rules[1].windows`) of keys no setting reads.
        public var unknown: [String] = []
        /// Dotted paths of keys a mapping gives more than once.
        public var repeated: [String] = []

        public var isEmpty: Bool { unknown.isEmpty && repeated.isEmpty }
    }

    /// The problems of `yaml`, given `decoded`, the value decoded from it.
    public static func find(in yaml: String, decoded: some Encodable) throws -> Problems {
        guard let given = try Yams.compose(yaml: yaml) else { return Problems() }
        let read = try Yams.compose(yaml: YAMLEncoder().encode(decoded))
        var problems = Problems()
        walk(given, read, path: "", into: &problems)
        return problems
    }

    private static func walk(_ given: Node, _ read: Node?, path: String, into problems: inout Problems) {
        switch given {
        case .mapping(let mapping):
            let all = entries(of: mapping)
            // The entry the decoder reads for each key: the last the mapping gives itself, or else the
            // last a merge brings (Yams looks keys up from the end of the merged mapping).
            var readEntry: [String: Int] = [:]
            var given = Set<String>()
            for (index, entry) in all.enumerated() {
                if entry.explicit {
                    if !given.insert(entry.key).inserted {
                        problems.repeated.append(path.isEmpty ? entry.key : path + "." + entry.key)
                    }
                    readEntry[entry.key] = index
                } else if !given.contains(entry.key) {
                    readEntry[entry.key] = index
                }
            }
            for (index, entry) in all.enumerated() where readEntry[entry.key] == index {
                let here = path.isEmpty ? entry.key : path + "." + entry.key
                guard entry.value.null == nil else { continue }
                guard let readValue = read?.mapping?[entry.key] else {
                    problems.unknown.append(here)
                    continue
                }
                walk(entry.value, readValue, path: here, into: &problems)
            }
        case .sequence(let sequence):
            guard let readSequence = read?.sequence, readSequence.count == sequence.count else { return }
            for (index, element) in sequence.enumerated() {
                walk(element, readSequence[index], path: path + "[\(index)]", into: &problems)
            }
        default:
            return
        }
    }

    /// A mapping's keys: its own first (`explicit`), then those its merge keys bring, which the
    /// decoder reads where the mapping does not give the key itself.
    private static func entries(of mapping: Node.Mapping) -> [(key: String, value: Node, explicit: Bool)] {
        var own: [(key: String, value: Node, explicit: Bool)] = []
        var merged: [(key: String, value: Node, explicit: Bool)] = []
        for (key, value) in mapping {
            guard key.tag.description == Tag.Name.merge.rawValue else {
                own.append((key.string ?? "\(key)", value, true))
                continue
            }
            let sources = value.mapping.map { [$0] } ?? (value.sequence?.compactMap(\.mapping) ?? [])
            for source in sources {
                merged += entries(of: source).map { ($0.key, $0.value, false) }
            }
        }
        return own + merged
    }

    /// What a loader refuses `yaml` for (unknown or repeated keys, or a file it could not walk),
    /// naming `file`; nil when it has nothing to refuse.
    static func refusal(in yaml: String, decoded: some Encodable, file: String) -> String? {
        do {
            let problems = try find(in: yaml, decoded: decoded)
            return problems.isEmpty ? nil : message(problems, file: file)
        } catch {
            return "\(file): cannot check its keys: \(error)"
        }
    }

    /// The loaders' message for `problems`, found in `file`.
    static func message(_ problems: Problems, file: String) -> String {
        func listed(_ paths: [String]) -> String {
            let named = paths.prefix(5).map { "'\($0)'" }.joined(separator: ", ")
            return named + (paths.count > 5 ? " and \(paths.count - 5) more" : "")
        }
        var parts: [String] = []
        if !problems.unknown.isEmpty {
            let noun = problems.unknown.count == 1 ? "key" : "keys"
            parts.append(
                "unknown \(noun) \(listed(problems.unknown)): not a setting (misspelt, or not at this level), so it would be ignored"
            )
        }
        if !problems.repeated.isEmpty {
            parts.append("\(listed(problems.repeated)) given more than once: only the last would count")
        }
        return "\(file) has " + parts.joined(separator: "; and ") + "; correct or remove it"
    }
}
