/// A binding of a shared object: every read of ``Binding/value`` in a scope returns the *same* instance.
///
/// The original Rust project had two kinds of bindings: plain values, copied into each read, and
/// values wrapped in an `Arc`, where every read in a scope returned the same shared reference. In Swift
/// the second kind is a ``Binding`` whose value is a class instance: the task local stores the
/// reference, so reads in the scope, in nested calls and in child tasks are identical (`===`), and
/// what one of them mutates through the object (an actor, or a class with its own synchronization)
/// the others see. Two scopes binding two instances stay apart, and outside any scope every read
/// returns the one default instance.
///
/// ```swift
/// final class Peers: Sendable {
///     let addresses: [UInt64: String]
///     init(_ addresses: [UInt64: String]) { self.addresses = addresses }
/// }
///
/// let currentPeers = ReferenceBinding(default: Peers([:]))
///
/// await currentPeers.withValue(Peers([1: "10.0.0.1:7000"])) {
///     async let a = currentPeers.value
///     let b = currentPeers.value
///     let shared = await a === b               // true: one shared object in the scope
/// }
/// ```
public typealias ReferenceBinding<Object: AnyObject & Sendable> = Binding<Object>
