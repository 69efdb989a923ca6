package users

import (
	"testing"
	"time"
)

func TestProfileCacheKeepsNoReadThatRacedAChange(t *testing.T) {
	t.Parallel()
	c := newProfileCache(time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const id = "65a1b2c3d4e5f60718293a4b"

	// A read starts, a rename of the account is forgotten meanwhile, then
	// the read (of the old name) ends: it is not kept.
	_, gen, ok := c.get(id, now)
	if ok {
		t.Fatal("an empty cache had an entry")
	}
	c.forget(id)
	c.put(id, profileEntry{id: id, name: "Old name"}, now, gen)
	if e, _, ok := c.get(id, now); ok {
		t.Fatalf("a read that raced a change was kept: %+v", e)
	}

	// A read that started after the change is kept, for the TTL, in any
	// case of the id.
	_, gen, _ = c.get(id, now)
	c.put(id, profileEntry{id: id, name: "New name"}, now, gen)
	if e, _, ok := c.get("65A1B2C3D4E5F60718293A4B", now.Add(59*time.Second)); !ok || e.name != "New name" || e.id != id {
		t.Fatalf("within the TTL: %+v %t", e, ok)
	}
	if _, _, ok := c.get(id, now.Add(time.Minute)); ok {
		t.Fatal("kept past the TTL")
	}

	// Malformed ids are not kept.
	_, gen, _ = c.get("x", now)
	c.put("x", profileEntry{gone: true}, now, gen)
	if len(c.m) != 1 {
		t.Fatalf("%d entries, want 1", len(c.m))
	}
}

func TestProfileCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := newProfileCache(time.Minute)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	id := func(i int) string {
		const hex = "0123456789abcdef"
		b := []byte("000000000000000000000000")
		for p := 23; i > 0; p-- {
			b[p] = hex[i%16]
			i /= 16
		}
		return string(b)
	}
	for i := range maxProfiles + 10 {
		_, gen, _ := c.get(id(i), now)
		c.put(id(i), profileEntry{id: id(i), name: "n"}, now, gen)
		if len(c.m) > maxProfiles {
			t.Fatalf("%d entries after %d puts, want at most %d", len(c.m), i+1, maxProfiles)
		}
	}
	// The newest is always kept, and a full cache drops one entry for
	// each new one, not all of them.
	if _, _, ok := c.get(id(maxProfiles+9), now); !ok {
		t.Fatal("the newest entry is missing")
	}
	if len(c.m) != maxProfiles {
		t.Fatalf("%d entries kept, want a full cache of %d", len(c.m), maxProfiles)
	}
}
