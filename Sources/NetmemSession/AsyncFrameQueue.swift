import Synchronization

/// A single-consumer queue between the RX thread and an async consumer, with high and
/// low watermarks: `push` says when the queue reached `limit` (the producer then stops
/// reading its source), `next` says when it drained to half of that (the producer reads
/// again). Elements handed out are removed at once, so the queue never holds a copy of a
/// message the consumer has (its tokens go back when the consumer lets it go).
final class AsyncFrameQueue<Element: Sendable, Failure: Error>: Sendable {
    enum Pressure { case none, high, low }

    private enum Taken { case element(Element, Pressure), end(Result<Element?, Failure>), wait }

    private struct State: ~Copyable {
        var items: [Element?] = []
        var head = 0
        /// The consumer's suspension. Whoever takes it out of the state (under the lock)
        /// resumes it, so each is resumed exactly once; unchecked continuations spare an
        /// allocation per wait on the hot path.
        var waiter: UnsafeContinuation<Result<Element?, Failure>, Never>?
        var end: Result<Void, Failure>?
        var cancelled = false
        var high = false
        var count: Int { items.count - head }

        mutating func pop() -> Element? {
            guard head < items.count else { return nil }
            let e = items[head]
            items[head] = nil
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 64 && head * 2 >= items.count {
                items.removeFirst(head)
                head = 0
            }
            return e
        }
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) { self.limit = limit }

    // MARK: Producer

    /// Adds an element (or hands it to a waiting consumer). Returns `.high` when the queue
    /// just reached its limit. An element pushed after the consumer cancelled is dropped.
    func push(_ element: Element) -> Pressure {
        var handoff: UnsafeContinuation<Result<Element?, Failure>, Never>?
        let pressure: Pressure = state.withLockChecked { s in
            if s.cancelled || s.end != nil { return .none }
            if let w = s.waiter {
                s.waiter = nil
                handoff = w
                return .none
            }
            s.items.append(element)
            if !s.high && s.count >= limit {
                s.high = true
                return .high
            }
            return .none
        }
        handoff?.resume(returning: .success(element))
        return pressure
    }

    /// Ends the queue: the consumer gets what is queued, then the end (nil, or the error).
    func finish(_ end: Result<Void, Failure>) {
        let waiter: UnsafeContinuation<Result<Element?, Failure>, Never>? = state.withLockChecked { s in
            guard s.end == nil else { return nil }
            s.end = end
            defer { s.waiter = nil }
            return s.waiter
        }
        switch end {
        case .success: waiter?.resume(returning: .success(nil))
        case let .failure(e): waiter?.resume(returning: .failure(e))
        }
    }

    /// Elements queued now.
    var count: Int { state.withLockChecked { $0.count } }

    /// Whether the queue reached its limit and has not drained to half of it yet.
    var isHigh: Bool { state.withLockChecked { $0.high } }

    // MARK: Consumer

    /// The next element, nil at the end or after cancellation. `pressure` is called with
    /// `.low` when the queue drained below half its limit after being high.
    func next(onCancel: @Sendable () -> Void, pressure: (Pressure) -> Void) async -> Result<Element?, Failure> {
        let taken: Taken = state.withLockChecked { s in
            if let e = s.pop() {
                if s.high && s.count <= limit / 2 {
                    s.high = false
                    return .element(e, .low)
                }
                return .element(e, .none)
            }
            if s.cancelled { return .end(.success(nil)) }
            switch s.end {
            case .some(.success): return .end(.success(nil))
            case let .some(.failure(e)): return .end(.failure(e))
            case nil: return .wait
            }
        }
        switch taken {
        case let .element(e, p):
            if case .low = p { pressure(.low) }
            return .success(e)
        case let .end(r):
            return r
        case .wait:
            break
        }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (c: UnsafeContinuation<Result<Element?, Failure>, Never>) in
                var low = false
                let immediate: Result<Element?, Failure>? = state.withLockChecked { s in
                    if let e = s.pop() {
                        if s.high && s.count <= limit / 2 {
                            s.high = false
                            low = true
                        }
                        return .success(e)
                    }
                    if s.cancelled { return .success(nil) }
                    switch s.end {
                    case .some(.success): return .success(nil)
                    case let .some(.failure(e)): return .failure(e)
                    case nil:
                        precondition(s.waiter == nil, "two tasks iterate one sequence at once; it has one consumer")
                        s.waiter = c
                        return nil
                    }
                }
                if let immediate { c.resume(returning: immediate) }
                if low { pressure(.low) }
            }
        } onCancel: {
            let waiter = state.withLockChecked { s -> UnsafeContinuation<Result<Element?, Failure>, Never>? in
                s.cancelled = true
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: .success(nil))
            onCancel()
        }
    }

    /// Drops every queued element (their obligations end) and refuses further ones.
    func cancel() {
        let dropped: [Element?] = state.withLockChecked { s in
            s.cancelled = true
            let items = s.items
            s.items.removeAll()
            s.head = 0
            return items
        }
        _ = dropped
    }
}
