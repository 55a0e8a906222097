package node

// openDirectory opens the directory of professionals and organisations.
func (n *Node) openDirectory() error { return nil }
