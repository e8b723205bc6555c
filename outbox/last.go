package outbox

// Last returns the N of the last accepted message, 0 when none was: a
// producer that restarts continues its numbering after it. It survives a
// restart (it is kept in the store), and starts at 0 again only when a
// corrupt store is replaced (with a new epoch).
func (o *Outbox) Last() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}
