import Foundation

/// Whose records a `medrecords` read asked for: the patient named in the request, and the patient of
/// the one record a `get` answers with. The node's anomaly rules count them (a doctor asking for a
/// hundred patients' records in minutes is a scrape, whatever the read rules let through). A
/// listing's answer is not counted: a doctor listing their own treatments sees all their patients
/// at once, and that is their work, not a sweep. Writes are not reads and give none.
public enum ReadSubjects {
    public static let readFunctions: Set<String> = [
        "getTreatment", "listTreatments", "getIndexRecord", "listIndexRecords", "getConsent", "listConsents",
        "listUsage",
    ]
    /// The patients of one read (empty for anything else): `args` as the proposal carried them,
    /// `answer` the payload of a successful read (nil if refused).
    public static func patients(function: String, args: [[UInt8]], answer: [UInt8]?) -> [String] {
        guard readFunctions.contains(function) else { return [] }
        var found = Set<String>()
        if args.count == 1, let request = try? JSONSerialization.jsonObject(with: Data(args[0])) as? [String: Any],
            let p = request["patient_pid"] as? String
        {
            found.insert(p)
        }
        if function.hasPrefix("get"), let answer,
            let record = try? JSONSerialization.jsonObject(with: Data(answer)) as? [String: Any],
            let p = record["patient_pid"] as? String
        {
            found.insert(p)
        }
        return Array(found)
    }
}
