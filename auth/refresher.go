package auth

import (
	"context"
	"strings"
	"sync"
	"time"
)

// The background refresher keeps recently used tokens fresh: one timer, set for the earliest
// renewal that is due, so an idle broker does no work at all (no polling).
type schedState struct {
	mu      sync.Mutex
	timer   Timer
	at      time.Time
	stopped bool
	ctx     context.Context
	cancel  context.CancelFunc
}

func (b *Broker) startScheduler() {
	b.sched.ctx, b.sched.cancel = context.WithCancel(context.Background())
	b.kick()
}

func (b *Broker) stopScheduler() {
	b.sched.mu.Lock()
	b.sched.stopped = true
	if b.sched.timer != nil {
		b.sched.timer.Stop()
	}
	b.sched.mu.Unlock()
	if b.sched.cancel != nil {
		b.sched.cancel()
	}
}

// due is when an entry should be renewed, and whether it should be at all.
func (b *Broker) due(e *tokenEntry, now time.Time) (time.Time, bool) {
	t := e.tok.Load()
	if t == nil || now.Unix()-e.lastUsed.Load() > int64(DefaultRecentUse/time.Second) {
		return time.Time{}, false
	}
	at := t.refreshAt
	if r := e.retryAt.Load(); r != 0 {
		if rt := time.Unix(0, r); rt.After(at) {
			at = rt
		}
	}
	if !at.Before(t.ExpiresOn) && e.retryAt.Load() == 0 {
		return time.Time{}, false
	}
	return at, true
}

// kick (re)arms the timer for the earliest due renewal.
func (b *Broker) kick() {
	now := b.clock.Now()
	var next time.Time
	if m := b.tokens.Load(); m != nil {
		for _, e := range *m {
			if at, ok := b.due(e, now); ok && (next.IsZero() || at.Before(next)) {
				next = at
			}
		}
	}
	b.sched.mu.Lock()
	defer b.sched.mu.Unlock()
	if b.sched.stopped || next.IsZero() {
		return
	}
	if b.sched.timer != nil {
		if !b.sched.at.After(next) && b.sched.at.After(now) {
			return // an earlier (or equal) wake-up is already set
		}
		b.sched.timer.Stop()
	}
	b.sched.at = next
	b.sched.timer = b.clock.AfterFunc(max(next.Sub(now), 0), b.onTimer)
}

// onTimer renews every due entry, then re-arms.
func (b *Broker) onTimer() {
	now := b.clock.Now()
	b.sched.mu.Lock()
	b.sched.timer = nil
	b.sched.mu.Unlock()
	if m := b.tokens.Load(); m != nil {
		for _, e := range *m {
			if at, ok := b.due(e, now); ok && !at.After(now) {
				b.refreshSoon(e)
			}
		}
	}
	b.kick()
}

// refreshSoon starts one background renewal of e, unless one runs or a backoff holds it.
func (b *Broker) refreshSoon(e *tokenEntry) {
	if r := e.retryAt.Load(); r != 0 && b.clock.Now().UnixNano() < r {
		return
	}
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	select {
	case <-b.closed:
		e.refreshing.Store(false)
		return
	default:
	}
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		defer e.refreshing.Store(false)
		a := b.accts.Load().byID[strings.ToLower(e.key.account)]
		if a == nil || a.getState() == StateNeedsSignIn {
			return
		}
		key := e.key.account + "\x00" + e.key.scopes + "\x00"
		_, _, _ = b.sf.Do(key, func() (any, error) {
			ctx, cancel := context.WithTimeout(b.sched.ctx, 2*time.Minute)
			defer cancel()
			return b.refresh(ctx, a, e, "", 0)
		})
	}()
}
