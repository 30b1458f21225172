import Foundation
import GRPCCore
import LedgerCA
import LedgerCrypto
import LedgerIdentity
import LedgerProtos
import LedgerRPC
import LedgerTransport
import Synchronization

/// Keeps the node's revocation lists fresh: re-reads its CRL files when they change, and when a list
/// is missing, past half its validity or stale, fetches the CA's current one from `crl_source` (and
/// writes it to the first CRL file, so a restart starts from it). A stale list stays in force and is
/// reported (`node status`, the log); it never stops the node.
final class CRLWatcher: Sendable {
    let files: [String]
    let source: NodeAddress?
    let rootsPEM: [UInt8]
    let trust: TrustStore
    let log: @Sendable (String) -> Void
    private let lastError = Mutex<String>("")
    private let reportedStale = Mutex<Set<UInt64>>([])

    init(
        files: [String], source: NodeAddress?, rootsPEM: [UInt8], trust: TrustStore,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.files = files
        self.source = source
        self.rootsPEM = rootsPEM
        self.trust = trust
        self.log = log
    }

    /// Why the last refresh from `crl_source` failed, empty if it did not.
    var lastRefreshError: String { lastError.withLock { $0 } }

    /// At start a CRL file that does not parse or verify stops the node (`strict`): it is a
    /// configuration error. Later it is reported and the last good CRL stays in force.
    func loadAll(strict: Bool) throws {
        for path in files {
            guard let data = FileManager.default.contents(atPath: path) else {
                if strict { log("medledgerd: CRL file \(path) does not exist yet; it will be read when it appears") }
                continue
            }
            do {
                if try trust.install(try RevocationList.parse([UInt8](data)), source: path) {
                    log("medledgerd: installed CRL from \(path)")
                }
            } catch {
                if strict { throw NodeServer.StartupError(description: "CRL file \(path): \(error)") }
                log("medledgerd: ignoring CRL file \(path): \(error)")
            }
        }
        reportStale()
    }

    private func reportStale(now: Date = Date()) {
        for crl in trust.installed where crl.isStale(at: now) {
            guard reportedStale.withLock({ $0.insert(crl.number).inserted }) else { continue }
            let how = source.map { "refreshing from \($0.host):\($0.port)" } ?? "set crl_source or replace the CRL file"
            log(
                "medledgerd: WARNING: CRL \(crl.number) of \(crl.issuer) is stale since \(crl.nextUpdate.map { "\($0)" } ?? "?"); still enforced; \(how)"
            )
        }
    }

    /// Fetches the CA's CRL when none is installed or one is due; installs and saves it.
    func refreshIfDue(now: Date = Date()) async {
        guard let source else { return }
        let installed = trust.installed
        guard installed.isEmpty || installed.contains(where: { $0.isDue(at: now) }) else { return }
        do {
            let response = try await withGRPCClient(
                transport: try ClientSecurity.transport(to: source, trustedRootsPEM: rootsPEM, identity: nil)
            ) { try await Medledger_CAEnrollment.Client(wrapping: $0).getCRL(Medledger_GetCRLRequest()) }
            let der = [UInt8](response.crlDer)
            let crl = try RevocationList.parse(der)
            if try trust.install(crl, source: "\(source.host):\(source.port)") {
                log("medledgerd: installed CRL \(crl.crlNumber) from the CA at \(source.host):\(source.port)")
                if let file = files.first {
                    try SecureFile.write(Data(RevocationList.pem(der: der).utf8), to: file, mode: 0o644)
                }
            }
            lastError.withLock { $0 = "" }
        } catch {
            let text = "CRL refresh from \(source.host):\(source.port) failed: \(error)"
            if lastError.withLock({
                let changed = $0 != text
                $0 = text
                return changed
            }) {
                log("medledgerd: \(text)")
            }
        }
        reportStale(now: now)
    }

    func poll(every seconds: Double) async {
        var lastSeen = [String: Date]()
        while !Task.isCancelled {
            var changed = false
            for path in files {
                let m = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? nil
                if m != lastSeen[path] {
                    lastSeen[path] = m
                    changed = true
                }
            }
            if changed { try? loadAll(strict: false) }
            await refreshIfDue()
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
        }
    }
}
