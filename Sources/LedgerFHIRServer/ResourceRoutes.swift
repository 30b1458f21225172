import Foundation
import Hummingbird
import LedgerFHIR
import MedRecords

/// The FHIR reads. Each checks the bearer token and its scopes here, then asks the backend, which
/// runs `medrecords`' read rules in the caller's name: what the chaincode hides is a 404 here too.
extension FHIRServer {
    static let countDefault = 20
    static let countMax = 100

    func addResources(_ router: Router<FHIRRequestContext>) {
        router.get("/fhir/DocumentReference/:id") { request, context in
            try await guarded(request, "DocumentReference", .read) { caller, _ in
                let record = try await backend.indexRecord(try Self.id(context), for: caller)
                return Self.fhirJSON(.ok, rendered.documentReference(record))
            }
        }
        router.get("/fhir/DocumentReference") { request, _ in
            try await guarded(request, "DocumentReference", .search) { caller, q in
                let patient = try Self.patient(q, caller)
                let (count, page) = try Self.paging(q)
                let dates = try Self.dates(q)
                let found = try await backend.indexRecords(
                    patient: patient, pageSize: count, bookmark: page, for: caller)
                let kept = found.records.filter { r in
                    dates.allSatisfy { f in RFC3339Time.parse(r.time).map(f.matches) ?? false }
                }
                return searchset(
                    kept.map { ($0.recordID, rendered.documentReference($0)) }, "DocumentReference", q,
                    next: found.bookmark)
            }
        }
        router.get("/fhir/Provenance/:id") { request, context in
            try await guarded(request, "Provenance", .read) { caller, _ in
                let id = try Self.id(context)
                guard id.hasPrefix(Provenance.idPrefix) else { throw FHIRFailure(404, "no Provenance \(id)") }
                return Self.fhir(
                    .ok,
                    Provenance(
                        try await backend.indexRecord(String(id.dropFirst(Provenance.idPrefix.count)), for: caller)))
            }
        }
        router.get("/fhir/Provenance") { request, _ in
            try await guarded(request, "Provenance", .search) { caller, q in
                guard let target = q.first("target"), target.hasPrefix("DocumentReference/") else {
                    throw FHIRFailure(400, "search Provenance by target=DocumentReference/ID")
                }
                // A target the caller may not see (or that does not exist) matches nothing.
                let record: IndexRecord
                do {
                    record = try await backend.indexRecord(
                        String(target.dropFirst("DocumentReference/".count)), for: caller)
                } catch let f as FHIRFailure where [400, 403, 404].contains(f.status) {
                    return searchset([], "Provenance", q, next: nil)
                }
                let p = Provenance(record)
                return searchset([(p.id, try FHIR.encode(p))], "Provenance", q, next: nil)
            }
        }
        router.get("/fhir/Consent/:id") { request, context in
            try await guarded(request, "Consent", .read) { caller, _ in
                Self.fhir(.ok, FHIRConsent(try await backend.consent(try Self.id(context), for: caller), now: Date()))
            }
        }
        router.get("/fhir/Consent") { request, _ in
            try await guarded(request, "Consent", .search) { caller, q in
                let patient = try Self.patient(q, caller)
                let (count, page) = try Self.paging(q)
                let found = try await backend.consents(patient: patient, pageSize: count, bookmark: page, for: caller)
                let now = Date()
                return searchset(
                    try found.records.map { ($0.consentID, try FHIR.encode(FHIRConsent($0, now: now))) }, "Consent", q,
                    next: found.bookmark)
            }
        }
        // The object store's ciphertext, as itself (application/octet-stream): the app decrypts it
        // with the patient's (or, after re-encryption, the grantee's) key. Id: its SHA-384.
        router.get("/fhir/Binary/:id") { request, context in
            try await guarded(request, "Binary", .read) { caller, _ in
                let digest = try Self.id(context)
                let size = try await backend.objectSize(digest, for: caller)
                var headers = HTTPFields()
                headers[.contentType] = "application/octet-stream"
                headers[.contentLength] = String(size)
                let backend = self.backend
                return Response(
                    status: .ok, headers: headers,
                    body: ResponseBody { writer in
                        try await backend.readObject(digest, for: caller) { piece in
                            try await writer.write(ByteBuffer(bytes: piece))
                        }
                        try await writer.finish(nil)
                    })
            }
        }
        router.get("/fhir/AuditEvent") { request, _ in
            try await guarded(request, "AuditEvent", .search) { caller, q in try await auditEvents(caller, q) }
        }
        router.get("/fhir/AuditEvent/:id") { request, _ in
            try await guarded(request, "AuditEvent", .read) { _, _ in
                throw FHIRFailure(405, "AuditEvents are searched (AuditEvent?patient=PID), not read by id")
            }
        }
        // Device readings, values sealed to the doctor: search by the treatment (encounter).
        router.get("/fhir/Observation") { request, _ in
            try await guarded(request, "Observation", .search) { caller, q in try await observations(caller, q) }
        }
        router.get("/fhir/Observation/:id") { request, _ in
            try await guarded(request, "Observation", .read) { _, _ in
                throw FHIRFailure(405, "Observations are searched (Observation?encounter=T_ID), not read by id")
            }
        }
        addWrites(router)
        // Anything else under /fhir: an OperationOutcome, not Hummingbird's empty 404.
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("/fhir/**", method: method) { _, _ in
                Self.outcome(FHIRFailure(404, "this server has no such resource or interaction; see /fhir/metadata"))
            }
        }
    }

    /// The writes. The node submits them in its own name and waits for the commit; what makes them
    /// count is the signatures they carry (both signers of a P_DE, the patient of a consent), which
    /// the chaincode verifies: a token alone never writes to the ledger.
    func addWrites(_ router: Router<FHIRRequestContext>) {
        router.post("/fhir/DocumentReference") { request, _ in
            try await guarded(request, "DocumentReference", .create) { caller, _ in
                let submission = try Self.submitted(try await Self.resourceBody(request), FHIRSubmission.document)
                let record = try await backend.createIndexRecord(submission, for: caller)
                return Self.created(
                    rendered.documentReference(record), at: "\(fhirBase)/DocumentReference/\(record.recordID)")
            }
        }
        router.post("/fhir/Consent") { request, _ in
            try await guarded(request, "Consent", .create) { caller, _ in
                let submission = try Self.submitted(try await Self.resourceBody(request), FHIRSubmission.consentGrant)
                let consent = try await backend.grantConsent(submission, for: caller)
                return Self.created(
                    try FHIR.encode(FHIRConsent(consent, now: Date())), at: "\(fhirBase)/Consent/\(consent.consentID)")
            }
        }
        router.put("/fhir/Consent/:id") { request, context in
            try await guarded(request, "Consent", .update) { caller, _ in
                let id = try Self.id(context)
                let body = try await Self.resourceBody(request)
                let signature = try Self.submitted(body) { (b) throws(FHIRSubmission.Invalid) in
                    try FHIRSubmission.consentRevocation(b, id: id)
                }
                let consent = try await backend.revokeConsent(id, signature: signature, for: caller)
                return Self.fhir(.ok, FHIRConsent(consent, now: Date()))
            }
        }
    }

    /// A resource a client sends: FHIR JSON (or plain JSON), at most 64 KiB.
    static func resourceBody(_ request: Request) async throws -> Data {
        let type = request.headers[.contentType]?.lowercased() ?? ""
        guard type.hasPrefix(FHIR.mediaType) || type.hasPrefix("application/json") else {
            throw FHIRFailure(415, "send the resource as \(FHIR.mediaType)")
        }
        do { return Data(buffer: try await request.body.collect(upTo: 64 * 1024)) } catch {
            throw FHIRFailure(413, "a resource is at most 64 KiB")
        }
    }

    static func submitted<T>(_ body: Data, _ parse: (Data) throws(FHIRSubmission.Invalid) -> T) throws -> T {
        do { return try parse(body) } catch { throw FHIRFailure(400, error.description) }
    }

    static func created(_ json: Data, at location: String) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        return fhirJSON(.created, json, headers: headers)
    }

    /// The patient's AuditEvents: D_UE on chain (the ledger's rules decide who sees them) and, for the
    /// patient themselves, this node's audit lines about reads of their records by others. Newest
    /// first; `_page` is an offset into at most 1,000 of each.
    func auditEvents(_ caller: FHIRCaller, _ q: Query) async throws -> Response {
        let patient = try Self.patient(q, caller)
        let (count, page) = try Self.paging(q)
        let offset =
            try page.map { p -> Int in
                guard let n = Int(p), (0...2000).contains(n) else {
                    throw FHIRFailure(400, "_page must be an offset 0…2000")
                }
                return n
            } ?? 0
        var entries: [AccessEntry] = []
        var bookmark: String?
        for _ in 0..<10 {
            let found = try await backend.usage(patient: patient, pageSize: 100, bookmark: bookmark, for: caller)
            entries += found.records.map(AccessEntry.init)
            // A page may hold fewer than asked (the chaincode filters by the caller's rights).
            guard !found.bookmark.isEmpty else { break }
            bookmark = found.bookmark
        }
        if caller.kind == .user, caller.role == "patient", caller.id == patient {
            entries += try await backend.accessLog(patient: patient, since: nil, limit: 1000, for: caller)
        }
        let dates = try Self.dates(q)
        let kept =
            entries
            .filter { e in dates.allSatisfy { f in RFC3339Time.parse(e.time).map(f.matches) ?? false } }
            .sorted { (RFC3339Time.parse($0.time) ?? .distantPast) > (RFC3339Time.parse($1.time) ?? .distantPast) }
        let slice = Array(kept.dropFirst(offset).prefix(count))
        let site = organization
        let events = try slice.map {
            ($0.id, try FHIR.encode(FHIRAuditEvent($0, observer: "medledgerd \(site)", site: site)))
        }
        let next = offset + count < kept.count ? String(offset + count) : nil
        return searchset(events, "AuditEvent", q, next: next, total: kept.count)
    }

    func observations(_ caller: FHIRCaller, _ q: Query) async throws -> Response {
        let given = q.first("encounter").map {
            $0.hasPrefix("Encounter/") ? String($0.dropFirst("Encounter/".count)) : $0
        }
        guard let tID = given, (1...128).contains(tID.count) else {
            throw FHIRFailure(400, "search Observations by treatment: ?encounter=T_ID")
        }
        let (count, page) = try Self.paging(q)
        let offset =
            try page.map { p -> Int in
                guard let n = Int(p), n >= 0 else { throw FHIRFailure(400, "_page must be an offset") }
                return n
            } ?? 0
        let found = try await backend.readings(treatment: tID, offset: offset, limit: count, for: caller)
        let items = try found.readings.map { r -> (String, Data) in
            let o = FHIRObservation(r)
            return (o.id, try FHIR.encode(o))
        }
        let next = offset + count < found.total ? String(offset + count) : nil
        return searchset(items, "Observation", q, next: next, total: found.total)
    }

    /// Token, scope, then the work; every refusal an OperationOutcome with the guide's status.
    func guarded(
        _ request: Request, _ type: String, _ interaction: SMARTScope.Interaction,
        _ work: (FHIRCaller, Query) async throws -> Response
    ) async throws -> Response {
        let header = request.headers[.authorization]
        let caller: FHIRCaller
        do { caller = try await authorization.caller(bearer: header) } catch {
            backend.audit(
                FHIRAuditNote(
                    actorID: "-", actorOrg: "-", actorRole: "-", action: "fhir.auth", target: "\(type)",
                    outcome: .denied, detail: error.message))
            return Self.outcome(error, tokenPresented: header != nil)
        }
        guard caller.scopes.permits(type, interaction, in: caller.context) else {
            let needed = "\(caller.context.rawValue)/\(type).\(interaction.rawValue)"
            backend.audit(
                FHIRAuditNote(
                    actorID: caller.id, actorOrg: caller.org, actorRole: caller.role, action: "fhir.scope",
                    target: type, outcome: .denied, detail: "needs \(needed)"))
            return Self.outcome(
                FHIRFailure(403, "the token's scopes do not allow this: it needs \(needed)"), scope: needed)
        }
        guard let q = Query(request.uri.query ?? "") else {
            return Self.outcome(FHIRFailure(400, "the query string does not decode"))
        }
        do { return try await work(caller, q) } catch let f as FHIRFailure {
            // An id that cannot name a record (the chaincode's 400) names no resource: 404, as for any other.
            if f.status == 400, interaction == .read {
                return Self.outcome(FHIRFailure(404, "no \(type) with that id"))
            }
            return Self.outcome(f)
        } catch {
            return Self.outcome(FHIRFailure(500, "internal error"))
        }
    }

    func searchset(_ items: [(String, Data)], _ type: String, _ q: Query, next: String?, total: Int? = nil) -> Response
    {
        let selfURL = "\(fhirBase)/\(type)" + (q.pairs.isEmpty ? "" : "?" + FormEncoding.encode(q.pairs))
        let nextURL = next.flatMap {
            $0.isEmpty
                ? nil
                : "\(fhirBase)/\(type)?" + FormEncoding.encode(q.pairs.filter { $0.0 != "_page" } + [("_page", $0)])
        }
        return Self.fhirJSON(
            .ok,
            SearchSet.assemble(
                items.map { (id: $0.0, json: $0.1) }, type: type, base: fhirBase, selfURL: selfURL, nextURL: nextURL,
                total: total))
    }

    static func id(_ context: FHIRRequestContext) throws -> String {
        guard let id = context.parameters.get("id"), (1...128).contains(id.count),
            id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
        else {
            throw FHIRFailure(404, "no such resource")
        }
        return id
    }

    /// The patient a search is about. A patient's token is about its own patient only.
    static func patient(_ q: Query, _ caller: FHIRCaller) throws -> String {
        let given = q.first("patient").map { $0.hasPrefix("Patient/") ? String($0.dropFirst("Patient/".count)) : $0 }
        if caller.context == .patient {
            guard given == nil || given == caller.id else {
                throw FHIRFailure(403, "a patient's token reads only that patient's records")
            }
            return caller.id
        }
        guard let given, (1...128).contains(given.count) else {
            throw FHIRFailure(400, "search by patient: ?patient=PID")
        }
        return given
    }

    static func paging(_ q: Query) throws -> (count: Int, page: String?) {
        var count = countDefault
        if let c = q.first("_count") {
            guard let n = Int(c), (1...countMax).contains(n) else {
                throw FHIRFailure(400, "_count must be 1…\(countMax)")
            }
            count = n
        }
        let page = q.first("_page")
        if let page, page.count > 1024 { throw FHIRFailure(400, "_page is too long") }
        return (count, page)
    }

    static func dates(_ q: Query) throws -> [DateFilter] {
        try q.all("date").map { text in
            guard let f = DateFilter(text) else {
                throw FHIRFailure(
                    400, "date \(text.debugDescription) is not [eq|lt|le|gt|ge]YYYY[-MM[-DD]] or an RFC 3339 time")
            }
            return f
        }
    }
}

/// A search's query string: names may repeat (`date=ge…&date=le…`).
struct Query {
    var pairs: [(String, String)]

    init?(_ text: String) {
        guard let p = FormEncoding.pairs(text), p.count <= 32 else { return nil }
        pairs = p
    }

    func first(_ name: String) -> String? { pairs.first { $0.0 == name }?.1 }
    func all(_ name: String) -> [String] { pairs.filter { $0.0 == name }.map(\.1) }
}
