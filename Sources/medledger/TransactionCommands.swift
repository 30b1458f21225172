import ArgumentParser
import Foundation
import LedgerChannel
import LedgerClient
import LedgerConfig
import LedgerCore
import LedgerCrypto
import LedgerIdentity
import LedgerNode
import LedgerProtos
import LedgerRPC
import LedgerTransport
import SwiftProtobuf

/// --node, --wallet, --channel: who calls which peer about which channel.
struct PeerOptions: ParsableArguments {
    @Option(help: "Peer address, host:port.") var node: String
    @Option(help: "Wallet directory of the identity making the call.") var wallet: String
    @Option(help: "Channel name.") var channel: String = "records"
    @Option(help: "Orderer address (default: the channel configuration's first orderer endpoint).") var orderer: String?

    func open() throws -> Wallet {
        do { return try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
    }

    func address() throws -> NodeAddress {
        guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
        return a
    }

    func gateway() async throws -> Gateway {
        let w = try open()
        let o = try orderer.map { s -> NodeAddress in
            guard let a = NodeAddress(s) else { throw ValidationError("--orderer \(s) is not host:port") }
            return a
        }
        return try await calling {
            try await Gateway.connect(wallet: w, peer: try address(), channel: channel, orderer: o)
        }
    }
}

/// Runs `body` with a gateway and closes it.
func withGateway<T>(_ options: PeerOptions, _ body: (Gateway) async throws -> T) async throws -> T {
    let g = try await options.gateway()
    defer { g.close() }
    do { return try await body(g) } catch let f as Gateway.Failure {
        throw CLIError(f.description)
    } catch let f as CallFailure {
        throw CLIError(f.description)
    }
}

func loadBlockFile(_ path: String) throws -> Medledger_Block {
    guard let d = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read block file \(path)") }
    do { return try Medledger_Block(serializedBytes: d) } catch {
        throw CLIError("\(path) is not a serialized block: \(error)")
    }
}

struct ChannelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "channel",
        abstract: "Channels: create the genesis block, join nodes, list, inspect, update the configuration.",
        subcommands: [Create.self, Join.self, List.self, Info.self, Update.self, SignUpdate.self, SubmitUpdate.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a channel's signed genesis block from a channel configuration YAML (network-config/).")
        @Option(help: "Channel configuration YAML.") var config: String
        @Option(help: "Wallet of an organisation administrator of the channel (signs the block).") var wallet: String
        @Option(help: "Where to write the genesis block.") var out: String

        func run() async throws {
            let cfg: Medledger_ChannelConfig
            do { cfg = try ChannelConfigFile.load(path: config) } catch { throw CLIError("\(error)") }
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            let admin = try SigningIdentity.load(certificatePath: w.signingCertPath, keyPath: w.signingKeyPath)
            let block: Medledger_Block
            do { block = try ConfigTransaction.genesisBlock(config: cfg, creator: admin, at: Date()) } catch {
                throw CLIError("cannot make the genesis block: \(error)")
            }
            try SecureFile.write(try block.serializedBytes() as Data, to: out, mode: 0o644)
            print(
                "genesis block of channel \(cfg.channelID): \(out) (\(cfg.organizations.count) organisations, \(Self.ordering(cfg.orderer)), chaincodes \(cfg.chaincodes.map(\.name).joined(separator: ", ")))"
            )
            print("header hash \(Hex.encode(block.header.headerHash))")
        }

        /// "orderer ORG at ENDPOINT" for solo; the consenters for raft.
        static func ordering(_ o: Medledger_OrdererConfig) -> String {
            guard o.type == "raft" else { return "orderer \(o.org) at \(o.endpoints.joined(separator: ", "))" }
            return "raft consenters "
                + o.consenters.map { "\($0.id) \($0.org) (\($0.endpoint))" }.joined(separator: ", ")
        }
    }

    struct Join: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Join a peer (or, with --orderer-node, the ordering service) to a channel from its genesis block.",
            discussion:
                "A raft consenter added after the genesis joins with --orderer-node and the configuration block that added it (`medledger block get config --out FILE`): it pulls the chain up to that block from the other consenters."
        )
        @Option(help: "Node address, host:port.") var node: String
        @Option(help: "Wallet of an administrator of the node's organisation.") var wallet: String
        @Option(
            help:
                "Genesis block file (with --orderer-node, or the configuration block that made this node a raft consenter)."
        ) var block: String
        @Flag(help: "Join the node's ordering service instead of its peer.") var ordererNode = false

        func run() async throws {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            var request = Medledger_JoinChannelRequest()
            request.genesisBlock = try loadBlockFile(block).serializedBytes()
            let req = request
            let r = try await calling {
                try await NodeConnection.with(a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) { client in
                    ordererNode
                        ? try await Medledger_Orderer.Client(wrapping: client).joinChannel(req)
                        : try await Medledger_Peer.Client(wrapping: client).joinChannel(req)
                }
            }
            print("\(ordererNode ? "orderer" : "peer") at \(node) joined channel \(r.channel) (height \(r.height))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Channels a peer (or with --orderer-node, the ordering service) has joined.")
        @Option(help: "Node address, host:port.") var node: String
        @Option(help: "Wallet directory.") var wallet: String
        @Flag(help: "Ask the node's ordering service.") var ordererNode = false

        func run() async throws {
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            guard let a = NodeAddress(node) else { throw ValidationError("--node \(node) is not host:port") }
            let r = try await calling {
                try await NodeConnection.with(a, trustedRootsPEM: w.caCertPEM, identity: w.tlsIdentity) { client in
                    ordererNode
                        ? try await Medledger_Orderer.Client(wrapping: client).listChannels(
                            Medledger_ListChannelsRequest())
                        : try await Medledger_Peer.Client(wrapping: client).listChannels(
                            Medledger_ListChannelsRequest())
                }
            }
            if r.channels.isEmpty { print("no channels") }
            for c in r.channels {
                print("\(c.channel)  height \(c.height)\(ordererNode ? "" : "  config sequence \(c.configSequence)")")
            }
        }
    }

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "A channel's configuration and chain tip, as a peer has them.")
        @OptionGroup var peer: PeerOptions
        @Flag(help: "JSON output.") var json = false

        func run() async throws {
            try await withGateway(peer) { g in
                let tip = try await g.block(nil)
                let c = g.config
                if json {
                    var o = JSONEncodingOptions()
                    o.preserveProtoFieldNames = true
                    print(try c.jsonString(options: o))
                    return
                }
                print("channel \(c.channelID)  config sequence \(c.sequence)  height \(tip.header.number + 1)")
                print(
                    "tip header hash \(Hex.encode(tip.header.headerHash))  commit hash \(Hex.encode(tip.metadata.commitHash))"
                )
                for o in c.organizations {
                    print(
                        "  organisation \(o.id)\(o.peerEndpoints.isEmpty ? "" : "  peers " + o.peerEndpoints.joined(separator: ", "))\(o.crl.isEmpty ? "" : "  (CRL)")"
                    )
                }
                print("  \(Create.ordering(c.orderer))")
                print(
                    "  batch: max \(c.batch.maxMessageCount) tx, preferred \(c.batch.preferredMaxBytes) B, absolute \(c.batch.absoluteMaxBytes) B, timeout \(c.batch.batchTimeoutMs) ms"
                )
                for cc in c.chaincodes { print("  chaincode \(cc.name): \(cc.endorsementPolicy)") }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Start a configuration update from a new channel YAML: writes an update signed by you; others add signatures with sign-update."
        )
        @OptionGroup var peer: PeerOptions
        @Option(help: "The new channel configuration YAML.") var config: String
        @Option(help: "Where to write the update.") var out: String

        func run() async throws {
            var cfg: Medledger_ChannelConfig
            do { cfg = try ChannelConfigFile.load(path: config) } catch { throw CLIError("\(error)") }
            let current = try await withGateway(peer) { $0.config }
            guard cfg.channelID == current.channelID else {
                throw CLIError("\(config) is for channel \(cfg.channelID), not \(current.channelID)")
            }
            cfg.sequence = current.sequence + 1
            // CRLs the CA published since the YAML was written stay in force unless it names another.
            for i in cfg.organizations.indices where cfg.organizations[i].crl.isEmpty {
                if let held = current.organizations.first(where: { $0.id == cfg.organizations[i].id }) {
                    cfg.organizations[i].crl = held.crl
                }
            }
            let w = try peer.open()
            let admin = try SigningIdentity.load(certificatePath: w.signingCertPath, keyPath: w.signingKeyPath)
            let env = try ConfigTransaction.envelope(config: cfg, admins: [admin], submitter: admin, at: Date())
            try SecureFile.write(try env.serializedBytes() as Data, to: out, mode: 0o644)
            print(
                "configuration update to sequence \(cfg.sequence) written to \(out), signed by \(admin.org); a majority of the \(current.organizations.count) organisations' administrators must sign"
            )
        }
    }

    struct SignUpdate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add your administrator signature to a configuration update file.")
        @Option(help: "Update file (rewritten in place).") var update: String
        @Option(help: "Wallet of an organisation administrator.") var wallet: String

        func run() async throws {
            guard let d = FileManager.default.contents(atPath: update) else { throw CLIError("cannot read \(update)") }
            let w: Wallet
            do { w = try Wallet.open(wallet) } catch { throw CLIError("\(error)") }
            let admin = try SigningIdentity.load(certificatePath: w.signingCertPath, keyPath: w.signingKeyPath)
            let env: Medledger_Envelope
            do {
                env = try ConfigTransaction.addSignature(
                    to: try Medledger_Envelope(serializedBytes: d), admin: admin, at: Date())
            } catch { throw CLIError("\(update) is not a configuration update: \(error)") }
            try SecureFile.write(try env.serializedBytes() as Data, to: update, mode: 0o644)
            let n =
                (try? Medledger_ConfigEnvelope(serializedBytes: Medledger_Payload(serializedBytes: env.payload).data)
                    .signatures.count) ?? 0
            print("signed as administrator of \(admin.org); \(n) signature(s) now")
        }
    }

    struct SubmitUpdate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Submit a signed configuration update and wait until the peer has committed it.")
        @OptionGroup var peer: PeerOptions
        @Option(help: "Update file.") var update: String

        func run() async throws {
            guard let d = FileManager.default.contents(atPath: update) else { throw CLIError("cannot read \(update)") }
            let env: Medledger_Envelope
            do { env = try Medledger_Envelope(serializedBytes: d) } catch {
                throw CLIError("\(update) does not parse: \(error)")
            }
            let txID = (try? Medledger_Payload(serializedBytes: env.payload).channelHeader.txID) ?? ""
            try await withGateway(peer) { g in
                try await g.broadcast(env)
                let s = try await g.commitStatus(txID: txID, waitMs: 30_000)
                guard s.committed else {
                    throw CLIError("the update was ordered but not committed on \(peer.node) within 30 s")
                }
                guard s.code == .valid else {
                    throw CLIError("the update was committed in block \(s.blockNumber) as \(s.code): not applied")
                }
                print("configuration update committed in block \(s.blockNumber)")
            }
        }
    }
}

struct ChaincodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaincode", abstract: "Call a chaincode: invoke (endorse, order, commit) or query.",
        subcommands: [Invoke.self, Query.self])

    struct CallOptions: ParsableArguments {
        @Option(help: "Chaincode name (medrecords, kv).") var chaincode: String
        @Option(name: .customLong("fn"), help: "Function.") var function: String
        @Option(name: .customLong("arg"), parsing: .unconditionalSingleValue, help: "An argument (repeat for more).")
        var args: [String] = []
        @Option(
            name: .customLong("arg-file"),
            help:
                "An argument read whole from a file, for values over the command line's limit (repeat for more; they follow the --arg values)."
        )
        var argFiles: [String] = []
        @Option(name: .customLong("transient"), help: "A transient input key=value, never recorded (repeat for more).")
        var transient: [String] = []

        /// The arguments as bytes: every --arg, then every --arg-file's contents.
        func byteArgs() throws -> [[UInt8]] {
            var out = args.map { Array($0.utf8) }
            for path in argFiles {
                guard let d = FileManager.default.contents(atPath: path) else {
                    throw ValidationError("--arg-file \(path): cannot read it")
                }
                out.append([UInt8](d))
            }
            return out
        }

        func transientMap() throws -> [String: [UInt8]] {
            var m = [String: [UInt8]]()
            for t in transient {
                guard let eq = t.firstIndex(of: "=") else { throw ValidationError("--transient \(t) is not key=value") }
                m[String(t[..<eq])] = Array(t[t.index(after: eq)...].utf8)
            }
            return m
        }
    }

    struct Invoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Submit a transaction and wait for its commit; prints the result and the validation code (exit 1 unless VALID)."
        )
        @OptionGroup var peer: PeerOptions
        @OptionGroup var call: CallOptions

        func run() async throws {
            let r = try await withGateway(peer) { g in
                try await g.submit(
                    chaincode: call.chaincode, function: call.function, byteArgs: try call.byteArgs(),
                    transient: try call.transientMap())
            }
            if !r.result.payload.isEmpty { print(r.result.text) }
            print("tx \(r.txID) committed in block \(r.blockNumber): \(r.code)")
            if !r.isValid { throw CLIError("transaction \(r.txID) is \(r.code) (see docs/VALIDATION_CODES.md)") }
        }
    }

    struct Query: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate a chaincode function on one peer; nothing is recorded.")
        @OptionGroup var peer: PeerOptions
        @OptionGroup var call: CallOptions

        func run() async throws {
            let r = try await withGateway(peer) { g in
                try await g.evaluate(
                    chaincode: call.chaincode, function: call.function, byteArgs: try call.byteArgs(),
                    transient: try call.transientMap())
            }
            guard r.status == 200 else { throw CLIError("[\(r.status)] \(r.message)") }
            print(r.text)
        }
    }
}

struct BlockCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block", abstract: "Read blocks from a peer.", subcommands: [Get.self, Tail.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "A block as JSON (NUMBER, 'latest' or 'config': the last configuration block); --out also writes it as a block file."
        )
        @OptionGroup var peer: PeerOptions
        @Argument(
            help:
                "Block number, 'latest', or 'config' (the last configuration block: what an added raft consenter joins with)."
        ) var number: String
        @Option(help: "Also write the block (protobuf) to this file, e.g. for `channel join --orderer-node --block`.")
        var out: String?

        func run() async throws {
            let n: UInt64?
            switch number {
            case "latest", "config": n = nil
            default:
                guard let v = UInt64(number) else {
                    throw ValidationError("block number must be a number, 'latest' or 'config'")
                }
                n = v
            }
            let wantConfig = number == "config"
            let b = try await withGateway(peer) { g in
                let b = try await g.block(n)
                return wantConfig && b.metadata.lastConfigBlock != b.header.number
                    ? try await g.block(b.metadata.lastConfigBlock) : b
            }
            if let out { try SecureFile.write(try b.serializedBytes() as Data, to: out, mode: 0o644) }
            print(try BlockJSON.render(b))
        }
    }

    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow committed blocks: one line per block (tx ids, validation codes, events).")
        @OptionGroup var peer: PeerOptions
        @Option(help: "First block (default: the next one).") var from: UInt64?
        @Option(help: "Stop after this many blocks.") var count: Int?

        func run() async throws {
            try await withGateway(peer) { g in
                let start: UInt64
                if let from { start = from } else { start = (try await g.block(nil)).header.number + 1 }
                let left = LockedCounter(count ?? Int.max)
                try await g.blocks(from: start, filtered: true) { m in
                    let fb = m.filteredBlock
                    let txs = fb.transactions.map { t in
                        "\(t.txID.prefix(12))… \(t.code)\(t.events.isEmpty ? "" : " [" + t.events.map(\.eventName).joined(separator: ",") + "]")"
                    }
                    print("block \(fb.number): \(fb.transactions.count) tx  " + txs.joined(separator: "; "))
                    fflush(nil)
                    return left.decrement() > 0
                }
            }
        }
    }
}

final class LockedCounter: @unchecked Sendable {  // touched by one stream callback at a time
    private var value: Int
    init(_ v: Int) { value = v }
    func decrement() -> Int {
        value -= 1
        return value
    }
}

/// What `tx get --proof` writes and `tx verify-proof` checks.
struct InclusionProofFile: Codable {
    var channel: String
    var txID: String
    var blockNumber: UInt64
    var txNumber: UInt64
    var validationCode: String
    var envelopeBase64: String
    var leafIndex: UInt64
    var treeSize: UInt64
    var path: [String]
    var header: Header
    var headerHash: String

    struct Header: Codable {
        var number: UInt64
        var previousHash: String
        var dataHash: String
    }

    enum CodingKeys: String, CodingKey {
        case channel
        case txID = "tx_id"
        case blockNumber = "block_number"
        case txNumber = "tx_number"
        case validationCode = "validation_code"
        case envelopeBase64 = "envelope_base64"
        case leafIndex = "leaf_index"
        case treeSize = "tree_size"
        case path, header
        case headerHash = "header_hash"
    }
}

extension InclusionProofFile.Header {
    enum CodingKeys: String, CodingKey {
        case number
        case previousHash = "previous_hash"
        case dataHash = "data_hash"
    }
}

struct TxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tx", abstract: "Transactions: fetch with a Merkle inclusion proof; verify a proof offline.",
        subcommands: [Get.self, VerifyProof.self])

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "A transaction's block position and validation code; with --proof its Merkle inclusion proof as JSON.")
        @OptionGroup var peer: PeerOptions
        @Argument(help: "Transaction id.") var txID: String
        @Flag(help: "Print the inclusion proof (JSON) instead of a summary.") var proof = false
        @Option(help: "Also write the proof JSON to this file.") var out: String?

        func run() async throws {
            let r = try await withGateway(peer) { try await $0.transaction(txID) }
            let file = InclusionProofFile(
                channel: peer.channel, txID: txID, blockNumber: r.blockNumber, txNumber: r.txNumber,
                validationCode: "\(r.code)",
                envelopeBase64: r.envelope.base64EncodedString(), leafIndex: r.proof.leafIndex,
                treeSize: r.proof.treeSize,
                path: r.proof.path.map { Hex.encode($0) },
                header: .init(
                    number: r.header.number, previousHash: Hex.encode(r.header.previousHash),
                    dataHash: Hex.encode(r.header.dataHash)),
                headerHash: Hex.encode(r.header.headerHash))
            let e = JSONEncoder()
            e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let json = String(decoding: try e.encode(file), as: UTF8.self)
            if let out { try SecureFile.write(Data((json + "\n").utf8), to: out, mode: 0o644) }
            if proof {
                print(json)
            } else {
                print(
                    "tx \(txID): block \(r.blockNumber), position \(r.txNumber), \(r.code); header hash \(file.headerHash)"
                )
            }
        }
    }

    struct VerifyProof: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Check an inclusion proof offline: the envelope's Merkle path leads to the header's data hash, and the header hashes to the expected value."
        )
        @Argument(help: "Proof JSON written by `tx get --proof`.") var file: String
        @Option(
            help:
                "Expected block header hash (hex), e.g. from another peer's `block get`. Default: the one in the file.")
        var headerHash: String?

        func run() async throws {
            guard let d = FileManager.default.contents(atPath: file) else { throw CLIError("cannot read \(file)") }
            let p: InclusionProofFile
            do { p = try JSONDecoder().decode(InclusionProofFile.self, from: d) } catch {
                throw CLIError("\(file) is not a proof file: \(error)")
            }
            guard let envelope = Data(base64Encoded: p.envelopeBase64), let prev = Hex.decode(p.header.previousHash),
                let dataHash = Hex.decode(p.header.dataHash)
            else {
                throw CLIError("\(file): envelope or header fields are not valid base64/hex")
            }
            let path = try p.path.map { h -> [UInt8] in
                guard let b = Hex.decode(h) else { throw CLIError("\(file): path entry \(h) is not hex") }
                return b
            }
            var header = Medledger_BlockHeader()
            header.number = p.header.number
            header.previousHash = Data(prev)
            header.dataHash = Data(dataHash)
            let computed = Hex.encode(header.headerHash)
            let expected = (headerHash ?? p.headerHash).lowercased()
            guard computed == expected else {
                throw CLIError("INVALID: the header hashes to \(computed), not \(expected)")
            }
            let proof = MerkleProof(leafIndex: p.leafIndex, treeSize: p.treeSize, path: path)
            guard proof.verify(leaf: [UInt8](envelope), root: dataHash) else {
                throw CLIError("INVALID: the Merkle path does not lead from the envelope to the header's data hash")
            }
            if let env = try? Medledger_Envelope(serializedBytes: envelope),
                let payload = try? Medledger_Payload(serializedBytes: env.payload), payload.channelHeader.txID != p.txID
            {
                throw CLIError("INVALID: the envelope is transaction \(payload.channelHeader.txID), not \(p.txID)")
            }
            print(
                "VALID: transaction \(p.txID) is leaf \(p.leafIndex) of \(p.treeSize) in block \(p.header.number) (header hash \(computed))"
            )
        }
    }
}
