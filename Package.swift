// swift-tools-version:6.1
import PackageDescription

// Module graph, in dependency order: each module depends only on modules above it (docs/ARCHITECTURE.md).
// [pure]: takes time, randomness and files from its callers (Tests/LedgerSimulationTests/PurityTests.swift
// checks); [crypto]: draws its own randomness for keys and nonces; [shell]: threads, sockets, disks, clocks.
//   CLibCrypto, CSecp256k1, CRocksDB, CRaft   system libraries (OpenSSL libcrypto, libsecp256k1, RocksDB, libraft + libuv)
//   CWriteback         (C: Linux sync_file_range, a GNU extension Swift's Glibc module does not export)
//   CP256Tables        → CLibCrypto, GMP (C: ECDSA P-256 verification with a table of one key's multiples)
//   LedgerProtos       → SwiftProtobuf (generated messages)
//   LedgerCrypto       → CLibCrypto, CWriteback, CP256Tables [crypto] (hex, base64url, digests: SHA-384 on OpenSSL,
//                        DER ECDSA signatures, P256Verifier: tables for the keys verified most)
//   LedgerPRE          → CSecp256k1, CLibCrypto [crypto] (Umbral threshold proxy re-encryption; docs/PRE.md)
//   LedgerRecords      → LedgerPRE [crypto] (sealed record bundles: chunked AES-256-GCM)
//   HospitalFlows      → LedgerPRE, LedgerCrypto, LedgerProtos [pure] (T_SK, FHIR readings and bundles, reading signatures)
//   LedgerAudit        → LedgerCrypto [shell] (the audit log file)
//   LedgerCore         → LedgerProtos, LedgerCrypto [pure] (blocks, hashes, limits, transaction parsing)
//   LedgerStorage      → LedgerCore [pure] (KVStore protocol, memory backend, channel ledger, world state, verifier)
//   LedgerRocksDB      → CRocksDB, LedgerStorage [shell] (the RocksDB backend; opening a node's ledgers on disk)
//   LedgerBench        → LedgerRocksDB, swift-crypto (the signature bound) [shell]
//   LedgerIdentity     → LedgerCrypto, LedgerProtos, X509 [crypto] (certificates, signing identities, trust)
//   LedgerCA           → LedgerIdentity, LedgerRocksDB, LedgerAudit [shell]
//   LedgerChaincode    → LedgerStorage, swift-crypto [pure] (chaincode protocol, stub, simulator, kv)
//   LedgerChannel      → LedgerChaincode, LedgerIdentity [pure] (config, membership, policies, transaction building,
//                        SubmitFlow: a submission from proposal to commit as a state machine)
//   MedRecords         → LedgerChaincode, LedgerIdentity, LedgerPRE [pure] (the paper's records chaincode)
//   LedgerPeer         → LedgerChannel [pure] (endorser, validators, the commit path over an injected KVStore)
//   LedgerOrderingCore → LedgerChannel [pure] (admission, block cutter, block making and signing, raft entry rules)
//   LedgerSimulation   → LedgerOrderingCore, LedgerPeer, MedRecords, swift-collections [pure] (`medledger sim`: the network from one seed)
//   LedgerRPC          → LedgerProtos, GRPCCore (generated service stubs)
//   LedgerTransport    → LedgerIdentity, gRPC NIO transport [shell] (mutual TLS, clients kept per node)
//   LedgerObjects      → LedgerCrypto [shell] (object store: ciphertexts named by SHA-384, files beside RocksDB)
//   LedgerClient       → LedgerRPC, LedgerTransport, LedgerChannel, LedgerObjects, LedgerRecords, HospitalFlows, MedRecords [shell]
//   LedgerIncidents    → swift-collections [pure but for the suspension file] (anomaly rules, windows, suspensions)
//   LedgerConfig       → LedgerChannel, LedgerIdentity, LedgerIncidents, Yams (node.yaml and channel YAML; no gRPC)
//   LedgerConsensus    → CRaft, NIOSSL [shell] (libraft on a libuv thread; Raft over pinned mutual TLS)
//   LedgerOrdering     → LedgerOrderingCore, LedgerConsensus [shell] (solo's cutting thread, the raft orderer)
//   LedgerFHIR         → MedRecords, LedgerCrypto [pure] (FHIR R4 resources, SMART scopes, PKCE)
//   LedgerHTTPConnections → Hummingbird [shell] (connections per source address on the HTTPS endpoints)
//   LedgerFHIRServer   → LedgerFHIR, LedgerIdentity, LedgerHTTPConnections, JWTKit, Hummingbird [shell] (SMART
//                        authorization server, FHIR routes)
//   LedgerOperations   → LedgerIdentity, LedgerIncidents, LedgerHTTPConnections, Hummingbird, swift-prometheus [shell]
//                        (health, version, metrics)
//   LedgerNode         → LedgerCA, LedgerConfig, LedgerPeer, LedgerOrdering, LedgerFHIRServer, LedgerOperations,
//                        … [shell] (the daemon's wiring; its own submissions in-process, not via LedgerClient)
//   medledgerd, medledger (thin executables); MedLedgerFuzzHarness → the decoders' modules; MedLedgerFuzz (libFuzzer)
let package = Package(
    name: "MedLedger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "medledger", targets: ["medledger"]),
        .executable(name: "medledgerd", targets: ["medledgerd"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerStorage", targets: ["LedgerStorage", "LedgerRocksDB"]),
        .library(name: "LedgerClient", targets: ["LedgerClient"]),
        .executable(name: "MedLedgerFuzz", targets: ["MedLedgerFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/grpc/grpc-swift-2.git", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport.git", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
    ],
    targets: [
        // Debian's librocksdb-dev (C API). scripts/test.sh installs it.
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        // Generated protobuf messages; regenerate with scripts/gen-protos.sh (CI never runs protoc).
        .target(name: "LedgerProtos", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        // Blocks, envelopes, hashing, Merkle proofs, keys and versions: pure logic, no I/O.
        .target(
            name: "LedgerCore",
            dependencies: ["LedgerProtos", "LedgerCrypto", .product(name: "Crypto", package: "swift-crypto")]),
        // Key-value backends (RocksDB, in-memory), block store, world state, history, crash-safe commit.
        .target(name: "LedgerStorage", dependencies: ["LedgerCore"]),
        // The RocksDB backend of KVStore, and opening a node's ledgers on it.
        .target(name: "LedgerRocksDB", dependencies: ["CRocksDB", "LedgerStorage"]),
        // Digests, hybrid public-key encryption (PIDs), secrets at rest.
        .target(
            name: "LedgerCrypto",
            dependencies: [
                "CLibCrypto", "CWriteback", "CP256Tables", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Starting a file's writeback early (sync_file_range), in C because Swift's Glibc hides it.
        .target(name: "CWriteback"),
        // ECDSA P-256 verification with a precomputed table per public key (OpenSSL libcrypto; GMP,
        // Debian's libgmp-dev, for the inversion), in C because it goes through OpenSSL's EC
        // interfaces that 3.0 marks deprecated.
        .target(
            name: "CP256Tables", dependencies: ["CLibCrypto"],
            linkerSettings: [.linkedLibrary("crypto"), .linkedLibrary("gmp")]),
        // Hash-chained JSON-lines audit log.
        .target(
            name: "LedgerAudit", dependencies: ["LedgerCrypto", .product(name: "Crypto", package: "swift-crypto")]),
        // Identities in certificates, certificate issuing, CRLs, trust store (chain + revocation checks).
        .target(
            name: "LedgerIdentity",
            dependencies: [
                "LedgerCrypto", "LedgerProtos",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The system administrator's certificate authority and its encrypted private store.
        .target(name: "LedgerCA", dependencies: ["LedgerIdentity", "LedgerStorage", "LedgerRocksDB", "LedgerAudit"]),
        // Generated gRPC service stubs.
        .target(
            name: "LedgerRPC",
            dependencies: [
                "LedgerProtos",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            ]),
        // TLS configuration shared by the node and the client (mutual TLS, verification hook).
        .target(
            name: "LedgerTransport",
            dependencies: [
                "LedgerIdentity",
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ]),
        // The node's and the channels' YAML configuration files, parsed and checked.
        .target(
            name: "LedgerConfig",
            dependencies: [
                "LedgerChannel", "LedgerIdentity", "LedgerIncidents", "LedgerProtos",
                .product(name: "Yams", package: "Yams"),
            ]),
        // Anomaly detection: rules, per-identity sliding windows, the suspension list.
        .target(name: "LedgerIncidents", dependencies: [.product(name: "DequeModule", package: "swift-collections")]),
        // The daemon: gRPC services over mutual TLS, authorisation, audit, CRL reloads.
        .target(
            name: "LedgerNode",
            dependencies: [
                "LedgerCA", "LedgerConfig", "LedgerRPC", "LedgerTransport", "LedgerStorage", "LedgerRocksDB",
                "LedgerPeer",
                "LedgerOrdering", "LedgerOrderingCore", "LedgerConsensus", "MedRecords", "LedgerObjects",
                "HospitalFlows", "LedgerOperations", "LedgerIncidents", "LedgerFHIRServer", "LedgerHTTPConnections",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // FHIR R4 resources mapped from the ledger's records, SMART v2 scopes and PKCE: pure logic.
        .target(
            name: "LedgerFHIR",
            dependencies: ["MedRecords", "LedgerCrypto", .product(name: "Crypto", package: "swift-crypto")]),
        // Connection limits shared by the node's HTTPS endpoints (operations, FHIR).
        .target(
            name: "LedgerHTTPConnections",
            dependencies: [
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        // The node's FHIR face: SMART on FHIR authorization server (jwt-kit) and the FHIR REST routes (Hummingbird).
        .target(
            name: "LedgerFHIRServer",
            dependencies: [
                "LedgerFHIR", "LedgerIdentity", "LedgerHTTPConnections",
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The operations endpoint (HTTPS: health, version, Prometheus metrics) and the gRPC metrics.
        .target(
            name: "LedgerOperations",
            dependencies: [
                "LedgerCrypto", "LedgerIdentity", "LedgerIncidents", "LedgerProtos", "LedgerHTTPConnections",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ]),
        // Client SDK: connect over mutual TLS, enroll, call the node.
        .target(
            name: "LedgerClient",
            dependencies: [
                "LedgerRPC", "LedgerTransport", "LedgerIdentity", "LedgerChannel", "LedgerCore", "LedgerCrypto",
                "LedgerObjects", "LedgerRecords", "HospitalFlows", "MedRecords",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The chaincode protocol, the stub that records read-write sets, the simulator, built-in chaincodes.
        .target(
            name: "LedgerChaincode",
            dependencies: ["LedgerStorage", .product(name: "Crypto", package: "swift-crypto")]),
        // The paper's records: treatments, index records P_DE, consents, usage records D_UE.
        .target(
            name: "MedRecords",
            dependencies: [
                "LedgerChaincode", "LedgerIdentity", "LedgerPRE", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Channels: configuration rules, membership (MSP), endorsement policies, genesis and config updates.
        .target(
            name: "LedgerChannel",
            dependencies: [
                "LedgerChaincode", "LedgerIdentity", "LedgerStorage", .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
            ]),
        // Peer logic: endorsement, transaction validation (signatures, policies, MVCC, phantoms).
        // The hospital's object store: encrypted records as files named by their SHA-384.
        .target(
            name: "LedgerObjects", dependencies: ["LedgerCrypto", .product(name: "Crypto", package: "swift-crypto")]),
        // Bitcoin Core's libsecp256k1 (secp256k1 point and scalar arithmetic for LedgerPRE). The scripts install libsecp256k1-dev.
        .systemLibrary(name: "CSecp256k1", pkgConfig: "libsecp256k1", providers: [.apt(["libsecp256k1-dev"])]),
        // OpenSSL's libcrypto (SHA-384 for LedgerCrypto; the CSPRNG and hash-to-curve's GF(p) arithmetic for LedgerPRE). The scripts install libssl-dev.
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        // Umbral threshold proxy re-encryption, byte-compatible with umbral-pre 0.11 (docs/PRE.md).
        .target(
            name: "LedgerPRE",
            dependencies: ["CSecp256k1", "CLibCrypto", .product(name: "Crypto", package: "swift-crypto")]),
        // Client-side sealing of a record bundle: chunked AES-256-GCM, key wrapped in an Umbral capsule (docs/SEALED_RECORDS.md).
        .target(name: "LedgerRecords", dependencies: ["LedgerPRE", .product(name: "Crypto", package: "swift-crypto")]),
        // The paper's off-chain formats: T_SK, device readings as FHIR Observations, record bundles.
        .target(
            name: "HospitalFlows",
            dependencies: [
                "LedgerPRE", "LedgerCrypto", "LedgerProtos", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .target(
            name: "LedgerPeer",
            dependencies: [
                "LedgerChannel", "LedgerChaincode", "LedgerStorage", "LedgerIdentity",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // What an orderer decides (admission, cutting, making and signing a block): pure, shared by the
        // solo and raft shells and the simulator.
        .target(name: "LedgerOrderingCore", dependencies: ["LedgerChannel", "LedgerStorage"]),
        // Ordering shells: solo's cutting thread and the raft orderer, behind the OrderingService protocol.
        .target(
            name: "LedgerOrdering",
            dependencies: ["LedgerOrderingCore", "LedgerChannel", "LedgerStorage", "LedgerConsensus"]),
        // Canonical's libraft and libuv from Debian (libraft-dev, libuv1-dev). The scripts install them.
        .systemLibrary(name: "CRaft", pkgConfig: "raft", providers: [.apt(["libraft-dev", "libuv1-dev"])]),
        // Raft consensus: the engine protocol the raft orderer uses, libraft driven from one libuv thread,
        // its transport bridged through mutual TLS with pinned keys. Knows nothing of blocks.
        .target(
            name: "LedgerConsensus",
            dependencies: [
                "CRaft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // Sample-chain generator and storage benchmarks (used by the CLI, the demo and the crash test).
        .target(
            name: "LedgerBench",
            dependencies: ["LedgerStorage", "LedgerRocksDB", .product(name: "Crypto", package: "swift-crypto")]),
        // Deterministic simulation: orderer, peers and clients as state machines in one thread from one
        // seed, with the network, disks and clocks simulated and faults injected (`medledger sim`).
        .target(
            name: "LedgerSimulation",
            dependencies: [
                "LedgerOrderingCore", "LedgerPeer", "LedgerChaincode", "LedgerChannel", "LedgerStorage", "MedRecords",
                "LedgerIdentity", "LedgerCrypto",
                "LedgerCore", "LedgerProtos",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HeapModule", package: "swift-collections"),
            ]),
        // Both programs allocate through jemalloc (Debian's libjemalloc-dev), which takes the place of
        // glibc's malloc for the whole process, Swift runtime and RocksDB included: glibc's took 8–10 %
        // of every process's CPU under load (docs/ARCHITECTURE.md, "Memory allocator").
        .executableTarget(
            name: "medledgerd",
            dependencies: [
                "LedgerNode", "LedgerConfig", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: [.linkedLibrary("jemalloc")]),
        .executableTarget(
            name: "medledger",
            dependencies: [
                "LedgerBench", "LedgerClient", "LedgerConfig", "LedgerNode", "LedgerFHIRServer", "LedgerAudit",
                "LedgerHTTPConnections", "MedRecords",
                "HospitalFlows", "LedgerRecords", "LedgerPRE",
                "LedgerStorage", "LedgerRocksDB", "LedgerSimulation",
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ],
            linkerSettings: [.linkedLibrary("jemalloc")]),
        // Fuzzing: one harness per decoder of network or disk bytes, driving the production entry points
        // against a fixed fixture; the binary is libFuzzer's under scripts/fuzz.sh and a corpus replayer
        // (and fixture/seed generator) in a normal build. Seed corpus: Tests/Fuzz/<target>/.
        .target(
            name: "MedLedgerFuzzHarness",
            dependencies: [
                "LedgerAudit", "LedgerChaincode", "LedgerChannel", "LedgerConfig", "LedgerCore", "LedgerCrypto",
                "LedgerIdentity", "LedgerPRE",
                "LedgerPeer", "LedgerProtos", "LedgerRecords", "LedgerStorage", "MedRecords",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .executableTarget(name: "MedLedgerFuzz", dependencies: ["MedLedgerFuzzHarness"]),
        .testTarget(
            name: "LedgerCoreTests", dependencies: ["LedgerCore", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "LedgerFHIRTests",
            dependencies: [
                "LedgerFHIR", "LedgerFHIRServer", "MedRecords", .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "LedgerIncidentsTests",
            dependencies: ["LedgerIncidents", "LedgerOperations", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "LedgerConsensusTests",
            dependencies: [
                "LedgerConsensus", "CRaft",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .testTarget(name: "LedgerSimulationTests", dependencies: ["LedgerSimulation"]),
        .testTarget(name: "LedgerStorageTests", dependencies: ["LedgerStorage", "LedgerRocksDB", "LedgerBench"]),
        .testTarget(
            name: "MedRecordsTests",
            dependencies: [
                "MedRecords", "LedgerPRE", "LedgerCrypto", "LedgerChaincode", "LedgerStorage", "LedgerCore",
                "LedgerProtos", "LedgerIdentity", .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "LedgerObjectsTests",
            dependencies: ["LedgerObjects", "LedgerCrypto", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "LedgerRecordsTests",
            dependencies: ["LedgerRecords", "LedgerPRE", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "HospitalFlowsTests",
            dependencies: ["HospitalFlows", "LedgerPRE", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "LedgerPRETests", dependencies: ["LedgerPRE", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(
            name: "LedgerPeerTests",
            dependencies: [
                "LedgerPeer", "LedgerChannel", "LedgerIdentity", "LedgerCA", "LedgerCrypto",
                .product(name: "X509", package: "swift-certificates"), "LedgerChaincode", "LedgerStorage",
                "LedgerRocksDB", "LedgerBench", "LedgerOrdering", "LedgerOrderingCore", "LedgerConsensus",
                .product(name: "NIOSSL", package: "swift-nio-ssl"), .product(name: "SwiftASN1", package: "swift-asn1"),
            ]),
        .testTarget(
            name: "LedgerIdentityTests",
            dependencies: [
                "LedgerIdentity", "LedgerCA", "LedgerAudit", "LedgerCrypto", "LedgerRocksDB",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // Replays the committed fuzz corpus (Tests/Fuzz) through every harness, without sanitizers.
        .testTarget(name: "MedLedgerFuzzTests", dependencies: ["MedLedgerFuzzHarness", "LedgerConfig"]),
        // Runs the real `medledger` / `medledgerd` binaries as child processes (crash test, network tests).
        .testTarget(
            name: "MedLedgerCLITests",
            dependencies: [
                "LedgerStorage", "LedgerRocksDB", "LedgerBench", "LedgerClient", "LedgerCA", "LedgerIdentity",
                "LedgerTransport",
                "medledger", "medledgerd",
                "HospitalFlows", "LedgerPRE", "MedRecords", "LedgerObjects", "LedgerRPC", "LedgerProtos",
                "LedgerCrypto", "LedgerChannel", "LedgerNode", "LedgerOperations", "LedgerHTTPConnections",
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
                .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
