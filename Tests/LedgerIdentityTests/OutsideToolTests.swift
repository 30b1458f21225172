import Foundation
import LedgerCA
import LedgerIdentity
import LedgerProtos
import Testing
import X509

/// The CA's output checked by tools no one here wrote: the openssl command line and Python's
/// `cryptography` package (installed by scripts/test.sh).
@Suite struct OutsideToolTests {
    @Test func opensslVerifiesIssuedCertificatesAndHonoursTheCRL() async throws {
        let f = try await CAFixture()
        let doctor = try f.enrollUser("dr.o", role: .doctor, by: f.hospitalAdmin, rid: "Doctor O")
        let patient = try f.enrollUser("p.o", role: .patient, by: f.hospitalAdmin, rid: "Patient O")
        let caFile = f.dir.write("ca.pem", f.ca.rootCertificate.pem)
        let doctorTLS = f.dir.write("doctor-tls.pem", String(decoding: doctor.tlsCertPem, as: UTF8.self))
        let doctorSign = f.dir.write("doctor-sign.pem", String(decoding: doctor.signingCertPem, as: UTF8.self))
        let patientTLS = f.dir.write("patient-tls.pem", String(decoding: patient.tlsCertPem, as: UTF8.self))

        for file in [doctorTLS, doctorSign, patientTLS] {
            let r = try runTool(["openssl", "verify", "-CAfile", caFile, file])
            #expect(r.status == 0, "\(r.out)\(r.err)")
            #expect(r.out.contains(": OK"))
        }

        var revoke = Medledger_RevokeRequest()
        revoke.serialHex = try cert(patient.tlsCertPem).serialHex
        revoke.reason = .keyCompromise
        _ = try f.ca.revoke(by: f.hospitalAdmin, revoke)
        let crlFile = f.dir.write("crl.pem", RevocationList.pem(der: try f.ca.currentCRL().der))

        let crlCheck = try runTool(["openssl", "crl", "-in", crlFile, "-CAfile", caFile, "-noout", "-verify"])
        #expect(crlCheck.status == 0, "\(crlCheck.out)\(crlCheck.err)")
        #expect((crlCheck.out + crlCheck.err).contains("verify OK"))

        let revoked = try runTool([
            "openssl", "verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, patientTLS,
        ])
        #expect(revoked.status != 0)
        #expect((revoked.out + revoked.err).contains("certificate revoked"))
        let good = try runTool(["openssl", "verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, doctorTLS])
        #expect(good.status == 0, "\(good.out)\(good.err)")
    }

    @Test func opensslShowsUsagesAndSubject() async throws {
        let f = try await CAFixture()
        let doctor = try f.enrollUser("dr.t", role: .doctor, by: f.hospitalAdmin, rid: "Doctor T")
        let tls = try runTool(
            ["openssl", "x509", "-noout", "-text"], stdin: String(decoding: doctor.tlsCertPem, as: UTF8.self))
        #expect(tls.status == 0)
        #expect(tls.out.contains("CN=\(doctor.pid)") || tls.out.contains("CN = \(doctor.pid)"))
        #expect(tls.out.contains("O=hospital-a") || tls.out.contains("O = hospital-a"))
        #expect(tls.out.contains("OU=doctor") || tls.out.contains("OU = doctor"))
        #expect(tls.out.contains("TLS Web Client Authentication"))
        #expect(tls.out.contains("Digital Signature"))
        #expect(tls.out.contains("CA:FALSE"))
        let sign = try runTool(
            ["openssl", "x509", "-noout", "-text"], stdin: String(decoding: doctor.signingCertPem, as: UTF8.self))
        #expect(sign.out.contains("Non Repudiation"))
        #expect(!sign.out.contains("TLS Web"))
        let root = try runTool(["openssl", "x509", "-noout", "-text"], stdin: f.ca.rootCertificate.pem)
        #expect(root.out.contains("CA:TRUE"))
        #expect(root.out.contains("Certificate Sign, CRL Sign"))
        #expect(root.out.contains("secp384r1") || root.out.contains("P-384"))
    }

    @Test func pythonCryptographyParsesCertificatesAndCRL() async throws {
        let f = try await CAFixture()
        let doctor = try f.enrollUser("dr.py", role: .doctor, by: f.hospitalAdmin, rid: "Doctor Py")
        var revoke = Medledger_RevokeRequest()
        revoke.serialHex = try cert(doctor.signingCertPem).serialHex
        _ = try f.ca.revoke(by: f.saAdmin, revoke)
        let caFile = f.dir.write("ca.pem", f.ca.rootCertificate.pem)
        let certFile = f.dir.write("tls.pem", String(decoding: doctor.tlsCertPem, as: UTF8.self))
        let crlFile = f.dir.write("crl.der", "")
        FileManager.default.createFile(atPath: crlFile, contents: Data(try f.ca.currentCRL().der))
        let script = """
            import sys
            from cryptography import x509
            from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
            ca = x509.load_pem_x509_certificate(open(sys.argv[1], 'rb').read())
            leaf = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())
            crl = x509.load_der_x509_crl(open(sys.argv[3], 'rb').read())
            leaf.verify_directly_issued_by(ca)
            name = leaf.subject
            print('pid', name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
            print('org', name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value)
            print('role', name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value)
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            print('clientAuth', ExtendedKeyUsageOID.CLIENT_AUTH in eku)
            print('crl_signature_valid', crl.is_signature_valid(ca.public_key()))
            print('crl_entries', len(list(crl)))
            print('crl_number', crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
            print('revoked_serial', format(list(crl)[0].serial_number, 'x'))
            """
        let r = try runTool(["python3", "-c", script, caFile, certFile, crlFile])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("pid \(doctor.pid)"))
        #expect(r.out.contains("org hospital-a"))
        #expect(r.out.contains("role doctor"))
        #expect(r.out.contains("clientAuth True"))
        #expect(r.out.contains("crl_signature_valid True"))
        #expect(r.out.contains("crl_entries 1"))
        let serial = try cert(doctor.signingCertPem).serialHex.drop { $0 == "0" }
        #expect(r.out.contains("revoked_serial \(serial)"))
    }
}
