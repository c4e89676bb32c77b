import BifrostRPC
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure of the test machinery itself (a missing binary, no free port).
public struct TestKitError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

/// Finds an executable product that SwiftPM builds next to the test bundle: `override` when given, else next to
/// the running test binary, else in the package's `.build/debug`.
public func productExecutable(_ name: String, override: String? = nil) throws -> URL {
    var candidates: [URL] = []
    if let override, !override.isEmpty { candidates.append(URL(fileURLWithPath: override)) }
    if let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
        candidates.append(URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent(name))
    }
    let argument0 = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    candidates.append(argument0.deletingLastPathComponent().appendingPathComponent(name))
    // On macOS the bundle is a directory: .build/debug/X.xctest/Contents/MacOS/X.
    candidates.append(
        argument0.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent(name))
    // The package's own build directory (this file is Modules/BifrostNodeTestKit/<file>).
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    candidates.append(root.appendingPathComponent(".build/debug/\(name)"))
    for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
        return candidate
    }
    throw TestKitError("\(name) not found (looked at \(candidates.map(\.path))); run `swift build --build-tests`")
}

/// A TCP port nobody listens on right now (``RPCAddress/freeLoopbackPort()``).
public func freePort() throws -> Int {
    try RPCAddress.freeLoopbackPort()
}
