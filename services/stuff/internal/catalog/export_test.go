package catalog

import (
	"fmt"
	"slices"
)

// CheckIndex verifies that the search structures hold exactly the listed
// entries: byPrice is the list in price order, every listed entry is in the
// index at its slot, and nothing else is.
func (c *Catalog) CheckIndex() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.byPrice) != len(c.list) || !slices.IsSortedFunc(c.byPrice, cmpPrice) {
		return fmt.Errorf("byPrice has %d entries (sorted: %v), the list %d", len(c.byPrice), slices.IsSortedFunc(c.byPrice, cmpPrice), len(c.list))
	}
	listed := map[*entry]bool{}
	for _, e := range c.list {
		listed[e] = true
		if !e.indexed || int(e.slot) >= len(c.slots) || c.slots[e.slot] != e {
			return fmt.Errorf("listed %s is not indexed at its slot", e.key.ID)
		}
	}
	for _, e := range c.byPrice {
		if !listed[e] {
			return fmt.Errorf("byPrice holds %s, not listed", e.key.ID)
		}
	}
	n := 0
	for _, e := range c.slots {
		if e != nil {
			n++
			if !listed[e] {
				return fmt.Errorf("index holds %s, not listed", e.key.ID)
			}
		}
	}
	if n != len(c.list) || c.ix.Len() != len(c.list) {
		return fmt.Errorf("index holds %d slots and %d documents for %d listed", n, c.ix.Len(), len(c.list))
	}
	return nil
}
