@_exported import BifrostRPC
@_exported import BifrostWire
@_exported import NIOCore

/// Declares an RPC service from a protocol of `async throws` methods. No IDL and no code generator program.
///
/// ```swift
/// @Service
/// public protocol Greeter: Sendable {
///     func hello(name: String) async throws -> String
///     func add(_ a: Int, _ b: Int) async throws -> Int
/// }
/// ```
///
/// generates, next to the protocol:
/// - `GreeterClient`, a typed client: `try await GreeterClient(client: rpc, address: a, serviceID: 7).hello(name: "x")`;
/// - `GreeterService<Implementation: Greeter>`, the server-side dispatch:
///   `server.router.register(GreeterService(MyGreeter()), as: 7)`;
/// - stable function ids, computed at compile time as `RPCFunctionID.of("Greeter.hello(name:)")` (the FNV-1a
///   hash of the service name and the method's full name), listed in `GreeterClient.functionIDs`.
///
/// Arguments and results may be any `Codable` or `WireCodable` types; they are encoded with ``WireEncoder``.
@attached(peer, names: suffixed(Client), suffixed(Service))
public macro Service() = #externalMacro(module: "BifrostMacrosPlugin", type: "ServiceMacro")
