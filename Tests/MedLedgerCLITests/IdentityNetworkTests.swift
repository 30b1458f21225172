import Crypto
import Foundation
@_spi(Testing) import LedgerCA
import LedgerClient
import LedgerCrypto
import LedgerIdentity
import LedgerRocksDB
import LedgerTransport
import Testing
import X509

/// The identity milestone end to end, with real processes on loopback: the SA node (CA) and a hospital
/// node run as separate processes over mutual TLS; the hospital is admitted, a doctor, a patient and a
/// device are registered and enrolled through the CLI, and every kind of caller meets the documented
/// status (docs/ACCESS.md).
@Suite(.serialized) struct IdentityNetworkTests {
    struct Files {
        let cert: String
        let key: String
        var tls: TLSIdentityFiles { TLSIdentityFiles(certificatePath: cert, keyPath: key) }
    }

    /// A TLS identity of `hospital-a` issued by a CA of its own (named `ca`), valid for a day: its
    /// files in `dir`, and the CA's certificate.
    static func identityFromOwnCA(
        _ dir: String, _ name: String, ca: String, role: String
    ) throws -> (files: Files, root: Certificate) {
        let caKey = P384.Signing.PrivateKey()
        let caCert = try CertificateFactory.selfSignedRoot(
            key: caKey, name: try DistinguishedName { CommonName(ca) }, validity: 86_400)
        let leafKey = P256.Signing.PrivateKey()
        let cert = try CertificateFactory.issue(
            publicKey: .init(leafKey.publicKey),
            identity: IdentityAttributes(pid: String(repeating: "R", count: 64), org: "hospital-a", role: role),
            purpose: .tls, issuer: caCert, issuerKey: caKey, validity: 86_400)
        return (try writeIdentity(dir, name, cert: cert, key: leafKey), caCert)
    }

    static func writeIdentity(
        _ dir: String, _ name: String, cert: Certificate, key: P256.Signing.PrivateKey
    ) throws -> Files {
        let f = Files(cert: "\(dir)/\(name)-cert.pem", key: "\(dir)/\(name)-key.pem")
        try Data(cert.pem.utf8).write(to: URL(fileURLWithPath: f.cert))
        try Data(key.pemRepresentation.utf8).write(to: URL(fileURLWithPath: f.key))
        return f
    }

    /// 200 when the call succeeds, else the status the client classified.
    static func status(_ op: () async throws -> Void) async -> Int {
        do {
            try await op()
            return 200
        } catch let f as CallFailure {
            return f.status
        } catch {
            return -1
        }
    }

    static func enroll(
        _ id: String, role: String, rid: String, admin: String, ca: String, enroll: String, caCert: String,
        into dir: String
    ) throws -> Wallet {
        let out = try MedLedgerBinary.ok([
            "user", "register", "--ca", ca, "--wallet", admin, "--id", id, "--role", role, "--rid", rid,
        ])
        let secret = try #require(
            out.split(separator: "\n").first { $0.contains("secret") }?.split(separator: " ").last.map(String.init))
        try MedLedgerBinary.ok([
            "user", "enroll", "--ca", enroll, "--ca-cert", caCert, "--id", id, "--secret", secret, "--wallet", dir,
        ])
        return try Wallet.open(dir)
    }

    @Test func saAndHospitalNodesEnforceTheAccessMatrix() async throws {
        let scratch = ScratchDir("identity-net")
        let root = scratch.path
        let sa = root + "/sa"
        let masterKey = root + "/master.key"
        try MedLedgerBinary.ok([
            "ca", "init", "--data", sa, "--master-key-file", masterKey, "--listen", "127.0.0.1:0", "--enroll-listen",
            "127.0.0.1:0",
        ])
        let caCertPath = sa + "/ca-cert.pem"
        let roots = [UInt8](try #require(FileManager.default.contents(atPath: caCertPath)))
        // The machine stopped while a line was being written: the SA's audit log ends mid-line. The SA
        // node must still start, keep those bytes and mark them (checked at the end with `audit verify`).
        let tornLine = Data(#"{"action":"user.register","actor":{"org":"sa","#.utf8)
        let saLog = try FileHandle(forWritingTo: URL(fileURLWithPath: sa + "/audit.log"))
        try saLog.seekToEnd()
        try saLog.write(contentsOf: tornLine)
        try saLog.close()

        // Before the SA node locks its store: a certificate from the right CA that has expired, and
        // one from a CA nobody trusts.
        let expired: Files
        do {
            let ca = try CertificateAuthority.open(dataDir: sa + "/ca", box: try SecretBox.load(keyFile: masterKey))
            defer { ca.close() }
            let key = P256.Signing.PrivateKey()
            let cert = try CertificateFactory.issue(
                publicKey: .init(key.publicKey),
                identity: IdentityAttributes(pid: String(repeating: "E", count: 64), org: "hospital-a", role: "doctor"),
                purpose: .tls, issuer: ca.rootCertificate, issuerKey: CertificateAuthority.rootKeyForTesting(ca),
                validity: 60, now: Date().addingTimeInterval(-7200))
            expired = try Self.writeIdentity(root, "expired", cert: cert, key: key)
        }
        let rogue = try Self.identityFromOwnCA(root, "rogue", ca: "Rogue CA", role: "doctor").files

        // The SA node.
        let saNode = try DaemonProcess(executable: MedLedgerBinary.url, arguments: ["ca", "serve", "--data", sa])
        defer { _ = saNode.stop() }
        try saNode.waitFor("medledgerd: ready")
        let ca = "127.0.0.1:\(try saNode.port(after: "node sa-node"))"
        let enroll = "127.0.0.1:\(try saNode.port(after: "CA enrollment"))"

        // Admit the hospital with one node; give the node its CRL and a channel with a few blocks.
        try MedLedgerBinary.ok([
            "org", "admit", "--ca", ca, "--wallet", sa + "/wallets/admin", "--org", "hospital-a", "--node", "peer0",
            "--listen", "127.0.0.1:0", "--out", root + "/hospital-a",
        ])
        let peerDir = root + "/hospital-a/nodes/peer0"
        let hospitalAdmin = root + "/hospital-a/admin"
        try MedLedgerBinary.ok(["ca", "crl", "--ca", enroll, "--ca-cert", caCertPath, "--out", peerDir + "/crl.pem"])
        try MedLedgerBinary.ok(["ledger", "sample", "--data", peerDir + "/data", "--channel", "demo", "--blocks", "3"])
        let config = try String(contentsOfFile: peerDir + "/node.yaml", encoding: .utf8)
        try (config + "crl_poll_seconds: 0.2\n").write(
            toFile: peerDir + "/node.yaml", atomically: true, encoding: .utf8)

        // The hospital node, a separate process.
        let peer = try DaemonProcess(
            executable: MedLedgerBinary.daemonURL, arguments: ["--config", peerDir + "/node.yaml"])
        defer { _ = peer.stop() }
        try peer.waitFor("medledgerd: ready")
        let node = NodeAddress(host: "127.0.0.1", port: try peer.port(after: "node peer0"))

        let doctor = try Self.enroll(
            "dr.chen", role: "doctor", rid: "Chen Wei, licence 4471", admin: hospitalAdmin, ca: ca, enroll: enroll,
            caCert: caCertPath, into: root + "/w/doctor")
        let patient = try Self.enroll(
            "p-1001", role: "patient", rid: "Lin Mei, ID 440111199001010022", admin: hospitalAdmin, ca: ca,
            enroll: enroll, caCert: caCertPath, into: root + "/w/patient")
        let device = try Self.enroll(
            "monitor-7", role: "device", rid: "bedside monitor 7, ward 3", admin: hospitalAdmin, ca: ca, enroll: enroll,
            caCert: caCertPath, into: root + "/w/device")
        #expect(doctor.info.role == "doctor" && patient.info.role == "patient" && device.info.role == "device")
        // Every refused enrollment reads the same, so probing learns nothing about which ids exist.
        try MedLedgerBinary.ok([
            "user", "register", "--ca", ca, "--wallet", hospitalAdmin, "--id", "p-probe", "--role", "patient", "--rid",
            "Probe Person",
        ])
        let wrongSecret = try MedLedgerBinary.run([
            "user", "enroll", "--ca", enroll, "--ca-cert", caCertPath, "--id", "p-probe", "--secret", "guess",
            "--wallet", root + "/w/probe-1",
        ])
        let unknownID = try MedLedgerBinary.run([
            "user", "enroll", "--ca", enroll, "--ca-cert", caCertPath, "--id", "nobody", "--secret", "guess",
            "--wallet", root + "/w/probe-2",
        ])
        #expect(wrongSecret.status != 0 && unknownID.status != 0)
        #expect(wrongSecret.stderr.contains("[401] enrollment refused"), "\(wrongSecret.stderr)")
        #expect(wrongSecret.stderr == unknownID.stderr)
        // Private keys and the master key are readable by their owner only.
        for path in [doctor.signingKeyPath, doctor.tlsKeyPath, masterKey] {
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            #expect(mode & 0o077 == 0, "\(path) has mode \(String(mode, radix: 8))")
        }

        func client(_ identity: TLSIdentityFiles?) -> NodeClient {
            NodeClient(endpoint: node, trustedRootsPEM: roots, identity: identity)
        }

        // The matrix: no certificate / other CA / expired → 401; wrong role → 403; unknown resource → 404; right role → OK.
        #expect(await Self.status { _ = try await client(nil).whoAmI() } == 401)
        #expect(await Self.status { _ = try await client(rogue.tls).whoAmI() } == 401)
        #expect(await Self.status { _ = try await client(expired.tls).whoAmI() } == 401)
        #expect(await Self.status { _ = try await client(patient.tlsIdentity).channelInfo("demo") } == 403)
        #expect(await Self.status { _ = try await client(device.tlsIdentity).channelInfo("demo") } == 403)
        #expect(await Self.status { _ = try await client(doctor.tlsIdentity).channelInfo("no-such-channel") } == 404)
        let info = try await client(doctor.tlsIdentity).channelInfo("demo")
        #expect(info.height == 3)
        for w in [doctor, patient, device] {
            let me = try await client(w.tlsIdentity).whoAmI()
            #expect(me.pid == w.info.pid)
            #expect(me.orgID == "hospital-a")
        }
        // The signing certificate is not a TLS identity.
        #expect(
            await Self.status {
                _ = try await client(
                    TLSIdentityFiles(certificatePath: doctor.signingCertPath, keyPath: doctor.signingKeyPath)
                ).whoAmI()
            } == 401)

        // openssl s_client, an outside TLS client: with a good certificate the handshake completes and
        // stays up; without one the node ends it with "certificate required".
        let withCert = try runOpenSSLClient(
            port: node.port, ca: caCertPath, cert: doctor.tlsCertPath, key: doctor.tlsKeyPath)
        #expect(withCert.contains("Verify return code: 0 (ok)"))
        #expect(!withCert.contains("alert"), "\(withCert)")
        let withoutCert = try runOpenSSLClient(port: node.port, ca: caCertPath, cert: nil, key: nil)
        #expect(withoutCert.contains("certificate required"), "\(withoutCert)")
        // A connection that never starts its handshake is closed at the node's deadline (10 s), so such
        // connections, which need no certificate, cannot pile up.
        let silent = try await HandshakeDeadlineTests.connectAndWaitForClose(port: node.port, waitingAtMost: 25)
        #expect(silent.read == 0, "the node kept a silent connection open for 25 s")
        #expect(silent.took >= .seconds(9), "closed after \(silent.took), before the deadline")

        // Revoke the device: the CA issues a new CRL, the node picks the file up without a restart, and the
        // device is locked out while others carry on.
        try MedLedgerBinary.ok([
            "ca", "revoke", "--ca", ca, "--wallet", hospitalAdmin, "--pid", device.info.pid, "--reason",
            "key-compromise",
        ])
        try MedLedgerBinary.ok(["ca", "crl", "--ca", enroll, "--ca-cert", caCertPath, "--out", peerDir + "/crl.pem"])
        let deadline = Date().addingTimeInterval(10)
        while peer.text.components(separatedBy: "installed CRL").count < 3, Date() < deadline { usleep(100_000) }
        #expect(await Self.status { _ = try await client(device.tlsIdentity).whoAmI() } == 401)
        #expect(await Self.status { _ = try await client(doctor.tlsIdentity).whoAmI() } == 200)
        let revokedHandshake = try runOpenSSLClient(
            port: node.port, ca: caCertPath, cert: device.tlsCertPath, key: device.tlsKeyPath)
        #expect(revokedHandshake.contains("alert"), "\(revokedHandshake)")

        // Only the SA resolves a PID; the hospital administrator is refused.
        let denied = try MedLedgerBinary.run([
            "ca", "resolve-pid", "--ca", ca, "--wallet", hospitalAdmin, "--pid", patient.info.pid, "--justification",
            "audit test",
        ])
        #expect(denied.status != 0)
        #expect(denied.stderr.contains("[403]"))
        let resolved = try MedLedgerBinary.ok([
            "ca", "resolve-pid", "--ca", ca, "--wallet", sa + "/wallets/admin", "--pid", patient.info.pid,
            "--justification", "audit test",
        ])
        #expect(resolved.contains("Lin Mei"))

        // Re-enrollment keeps the PID; `cert show` reads it back from the certificate.
        try MedLedgerBinary.ok(["user", "reenroll", "--ca", ca, "--wallet", doctor.directory])
        let shown = try MedLedgerBinary.ok(["cert", "show", doctor.directory])
        #expect(shown.contains(doctor.info.pid))
        #expect(shown.contains("doctor"))
        #expect(try await client(doctor.tlsIdentity).whoAmI().pid == doctor.info.pid)

        // Both audit logs verify, and neither holds a real identity.
        #expect(peer.stop() == 0)
        #expect(saNode.stop() == 0)
        for log in [sa + "/audit.log", peerDir + "/audit.log"] {
            let v = try MedLedgerBinary.run(["audit", "verify", log])
            #expect(v.status == 0, "\(v.stdout)")
            let text = try String(contentsOfFile: log, encoding: .utf8)
            #expect(!text.contains("Lin Mei") && !text.contains("Chen Wei"))
        }
        // The torn line is still there, reported as a recovery rather than as tampering.
        let saVerify = try MedLedgerBinary.run(["audit", "verify", sa + "/audit.log"])
        #expect(
            saVerify.stdout.contains("recovered:") && saVerify.stdout.contains("\(tornLine.count) torn bytes"),
            "\(saVerify.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: sa + "/audit.log")).range(of: tornLine) != nil)
        #expect(saNode.text.contains("audit log ended in a torn line"), "\(saNode.text)")
        let peerAudit = try String(contentsOfFile: peerDir + "/audit.log", encoding: .utf8)
        #expect(peerAudit.contains("\"action\":\"tls.handshake\"") && peerAudit.contains("is revoked"))
        #expect(peerAudit.contains("\"action\":\"channel.info\"") && peerAudit.contains("\"outcome\":\"denied\""))
        let saAudit = try String(contentsOfFile: sa + "/audit.log", encoding: .utf8)
        for action in ["org.admit", "user.register", "user.enroll", "cert.revoke", "pid.resolve"] {
            #expect(saAudit.contains("\"action\":\"\(action)\""), "\(action)")
        }
    }

    /// `openssl s_client` against the node; returns what it printed.
    func runOpenSSLClient(port: Int, ca: String, cert: String?, key: String?) throws -> String {
        var args = ["openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-CAfile", ca, "-alpn", "h2"]
        if let cert, let key { args += ["-cert", cert, "-key", key] }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        let out = Pipe()
        let input = Pipe()
        p.standardOutput = out
        p.standardError = out
        p.standardInput = input
        try p.run()
        // TLS 1.3 reports a refused client certificate only when the client reads: wait, then close.
        usleep(800_000)
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitForExit()
        return String(decoding: data, as: UTF8.self)
    }
}
