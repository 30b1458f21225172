import Foundation
import MedLedgerFuzzHarness

// MedLedgerFuzz: libFuzzer harnesses for every decoder that reads bytes from the network or disk
// (targets in MedLedgerFuzzHarness/Harnesses.swift; scripts/fuzz.sh builds and runs them).
//
// Built with `-DMEDLEDGER_FUZZING -sanitize=fuzzer,address`, `main` hands over to libFuzzer
// (LLVMFuzzerRunDriver) with the target named by MEDLEDGER_FUZZ_TARGET; every libFuzzer flag works.
// Built normally, it replays corpus files through the same harnesses and generates the fixture and
// the seed corpus.

/// The target this process fuzzes, from MEDLEDGER_FUZZ_TARGET.
let selectedTarget: FuzzTarget? = ProcessInfo.processInfo.environment["MEDLEDGER_FUZZ_TARGET"].flatMap(
    FuzzTargets.named)

/// libFuzzer's entry point: one input to the selected target. Exported under the standard name so
/// the binary also works with other drivers of the libFuzzer interface.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = selectedTarget else { return 0 }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    target.run(bytes)
    return 0
}

#if MEDLEDGER_FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

@main
struct MedLedgerFuzz {
    static func usage() -> Never {
        let names = FuzzTargets.all.map(\.name).joined(separator: " ")
        FileHandle.standardError.write(
            Data(
                """
                usage: MedLedgerFuzz list | replay CORPUS_DIR | replay TARGET FILE|DIR... | make-fixture | make-seeds DIR
                (built with scripts/fuzz.sh: MEDLEDGER_FUZZ_TARGET=TARGET MedLedgerFuzz [libFuzzer flags] [CORPUS_DIR])
                targets: \(names)

                """.utf8))
        exit(2)
    }

    static func main() {
        #if MEDLEDGER_FUZZING
        fuzz()
        #else
        tools(Array(CommandLine.arguments.dropFirst()))
        #endif
    }

    #if MEDLEDGER_FUZZING
    static func fuzz() -> Never {
        // Both are read from the environment at process start, so set them and start again:
        // - the Swift runtime's crash handler reads memory ASan has poisoned and reports the crash
        //   itself; libFuzzer must see the signal;
        // - LeakSanitizer reports Foundation's and swift-protobuf's allocations at exit as leaks.
        let env = ProcessInfo.processInfo.environment
        let backtrace = env["SWIFT_BACKTRACE"] ?? ""
        let asan = env["ASAN_OPTIONS"] ?? ""
        if !backtrace.contains("enable=no") || !asan.contains("detect_leaks") {
            setenv("SWIFT_BACKTRACE", "enable=no", 1)
            setenv("ASAN_OPTIONS", asan.isEmpty ? "detect_leaks=0" : asan + ":detect_leaks=0", 1)
            execv("/proc/self/exe", CommandLine.unsafeArgv)
            perror("MedLedgerFuzz: re-exec with SWIFT_BACKTRACE=enable=no")
            exit(2)
        }
        guard selectedTarget != nil else {
            FileHandle.standardError.write(
                Data(
                    "MedLedgerFuzz: set MEDLEDGER_FUZZ_TARGET to one of: \(FuzzTargets.all.map(\.name).joined(separator: " "))\n"
                        .utf8))
            exit(2)
        }
        FuzzTargets.prepare()
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOne(data, size) }
        FuzzTargets.cleanUp()
        exit(status)
    }
    #endif

    static func tools(_ args: [String]) {
        guard let command = args.first else { usage() }
        do {
            switch command {
            case "list":
                for t in FuzzTargets.all {
                    print("\(t.name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(t.drives)")
                }
            case "replay":
                let rest = Array(args.dropFirst())
                guard let first = rest.first else { usage() }
                let runs: [(FuzzTarget, [String])]
                if let target = FuzzTargets.named(first) {
                    runs = [(target, try files(Array(rest.dropFirst())))]
                } else {
                    guard rest.count == 1 else { usage() }
                    runs = try FuzzTargets.all.map { t in (t, try files([first + "/" + t.name])) }
                }
                FuzzTargets.prepare()
                for (target, paths) in runs {
                    for path in paths { target.run(Array(try Data(contentsOf: URL(fileURLWithPath: path)))) }
                    print("\(target.name): \(paths.count) inputs replayed")
                }
                FuzzTargets.cleanUp()
            case "make-fixture":
                print(try FixtureGenerator.swiftSource(), terminator: "")
            case "make-seeds":
                guard args.count == 2 else { usage() }
                try Seeds.write(to: args[1])
                print("seed corpus written under \(args[1])")
            default:
                usage()
            }
        } catch {
            FileHandle.standardError.write(Data("MedLedgerFuzz: \(error)\n".utf8))
            exit(1)
        }
    }

    /// Files named, and the files in directories named (not recursive), sorted.
    static func files(_ paths: [String]) throws -> [String] {
        var out = [String]()
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw FixtureError("no such file or directory: \(p)")
            }
            if isDir.boolValue {
                out += try FileManager.default.contentsOfDirectory(atPath: p).filter { !$0.hasPrefix(".") }.sorted().map
                { p + "/" + $0 }
            } else {
                out.append(p)
            }
        }
        return out
    }
}
