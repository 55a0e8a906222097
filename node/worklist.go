package node

// openWorklist sets up the reading worklist.
func (n *Node) openWorklist() error { return nil }
