// swift-tools-version:6.0
import PackageDescription

// Module graph (dependencies point one way, down the list):
//   CRocksDB, LedgerProtos  →  LedgerCore  →  LedgerStorage  →  LedgerBench  →  medledger
// See docs/ARCHITECTURE.md for what each module holds and why.
let package = Package(
    name: "MedLedger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "medledger", targets: ["medledger"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "LedgerStorage", targets: ["LedgerStorage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // Debian's librocksdb-dev (C API). scripts/test.sh installs it.
        .systemLibrary(
            name: "CRocksDB",
            pkgConfig: "rocksdb",
            providers: [.apt(["librocksdb-dev"])]
        ),
        // Generated protobuf messages; regenerate with scripts/gen-protos.sh (CI never runs protoc).
        .target(
            name: "LedgerProtos",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]
        ),
        // Blocks, envelopes, hashing, Merkle proofs, keys and versions: pure logic, no I/O.
        .target(
            name: "LedgerCore",
            dependencies: [
                "LedgerProtos",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Key-value backends (RocksDB, in-memory), block store, world state, history, crash-safe commit.
        .target(
            name: "LedgerStorage",
            dependencies: ["CRocksDB", "LedgerCore"]
        ),
        // Sample-chain generator and storage benchmarks (used by the CLI, the demo and the crash test).
        .target(
            name: "LedgerBench",
            dependencies: ["LedgerStorage"]
        ),
        .executableTarget(
            name: "medledger",
            dependencies: [
                "LedgerBench",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore"]),
        .testTarget(name: "LedgerStorageTests", dependencies: ["LedgerStorage", "LedgerBench"]),
        // Runs the real `medledger` binary as a child process (crash test, CLI checks).
        .testTarget(
            name: "MedLedgerCLITests",
            dependencies: ["LedgerStorage", "LedgerBench", "medledger"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
