import LedgerChaincode

/// `medrecords`' read rules for callers in the node's own process (its services and its FHIR
/// face), typed: the very methods `invoke` runs for these functions, without the JSON between
/// (`Simulator.read` supplies the stub). A refusal is a `ChaincodeRefusal` with the status the
/// byte answer would carry.
public enum MedRecordsReads {
    public static func treatment(_ r: GetTreatmentRequest, stub: ChaincodeStub) throws -> Treatment {
        try run(stub) { try $0.treatment(r) }
    }
    public static func indexRecord(_ r: GetIndexRecordRequest, stub: ChaincodeStub) throws -> IndexRecord {
        try run(stub) { try $0.indexRecord(r) }
    }
    public static func indexRecords(_ r: ListIndexRecordsRequest, stub: ChaincodeStub) throws -> RecordPage<IndexRecord>
    { try run(stub) { try $0.indexRecords(r) } }
    public static func consent(_ r: GetConsentRequest, stub: ChaincodeStub) throws -> Consent {
        try run(stub) { try $0.consent(r) }
    }
    public static func consents(_ r: ListConsentsRequest, stub: ChaincodeStub) throws -> RecordPage<Consent> {
        try run(stub) { try $0.consents(r) }
    }
    public static func usage(_ r: ListUsageRequest, stub: ChaincodeStub) throws -> RecordPage<UsageRecord> {
        try run(stub) { try $0.usage(r) }
    }

    static func run<T>(_ stub: ChaincodeStub, _ body: (Call) throws -> T) throws -> T {
        do { return try body(Call(stub: stub)) } catch let r as Refusal {
            throw ChaincodeRefusal(status: r.status, message: r.message)
        }
    }
}
