package rules

// StateSize is the number of per-track entries the engine holds, over all rules.
func (e *Engine) StateSize() int {
	n := len(e.last)
	for _, r := range e.rules {
		switch r := r.(type) {
		case *zoneRule:
			n += len(r.st)
		case *lineRule:
			n += len(r.st)
		case *wrongWayRule:
			n += len(r.st)
		case *speedRule:
			n += len(r.st)
		case *stoppedRule:
			n += len(r.st)
		}
	}
	return n
}
