// Package clocktest provides a clock.Clock that tests move by hand, so tests of expiry and
// renewal never sleep.
package clocktest

import (
	"sync"
	"time"

	"github.com/entra-companion/entra-companion/auth/clock"
)

// Fake is a clock.Clock moved by Advance; timers fire (each in its own goroutine, like
// time.AfterFunc) when Advance passes their time.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	c       *Fake
	at      time.Time
	f       func()
	stopped bool
}

var _ clock.Clock = (*Fake)(nil)

// New returns a Fake set to the current time, to the second. It starts at the real time on
// purpose: MSAL dates a token's expiry from the wall clock, so the broker's and an authority's
// ideas of expiry agree only while the fake clock has not moved far from the real one.
func New() *Fake { return &Fake{now: time.Now().Truncate(time.Second)} }

// Now returns the fake time.
func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f once Advance reaches now+d.
func (c *Fake) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Stop prevents the call.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves the clock and fires the timers that fall due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		go t.f()
	}
}
