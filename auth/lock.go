package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
)

// storeLock serialises writers of the keychain items: goroutines of this process through a
// semaphore, processes (the tray app and CLI invocations) through a file lock in the state
// directory. Next to the lock, a generation file counts writes, so a process can tell that
// another one changed the keychain and reload before it redeems a refresh token that was
// rotated meanwhile. Neither file holds anything secret.
type storeLock struct {
	sem     chan struct{}
	fl      *flock.Flock // nil without a state directory (memory-only session)
	genPath string
}

func newStoreLock(dir string) (*storeLock, error) {
	l := &storeLock{sem: make(chan struct{}, 1)}
	if dir == "" {
		return l, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	l.fl = flock.New(filepath.Join(dir, "keychain.lock"), flock.SetPermissions(0o600))
	l.genPath = filepath.Join(dir, "keychain.gen")
	return l, nil
}

// lock takes the lock or gives up when ctx ends.
func (l *storeLock) lock(ctx context.Context) (unlock func(), err error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the keychain lock: %w", ctx.Err())
	}
	if l.fl != nil {
		ok, err := l.fl.TryLockContext(ctx, 25*time.Millisecond)
		if err != nil || !ok {
			<-l.sem
			if err == nil {
				err = ctx.Err()
			}
			return nil, fmt.Errorf("waiting for the keychain lock held by another entra-companion process: %w", err)
		}
	}
	return func() {
		if l.fl != nil {
			_ = l.fl.Unlock()
		}
		<-l.sem
	}, nil
}

// generation reads the write counter; 0 when nothing was written yet.
func (l *storeLock) generation() uint64 {
	if l.genPath == "" {
		return 0
	}
	b, err := os.ReadFile(l.genPath)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// bump increments the write counter; call it with the lock held.
func (l *storeLock) bump() uint64 {
	if l.genPath == "" {
		return 0
	}
	n := l.generation() + 1
	tmp := l.genPath + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(n, 10)+"\n"), 0o600); err == nil {
		_ = os.Rename(tmp, l.genPath)
	}
	return n
}

// dir is the watched directory, "" without one.
func (l *storeLock) dir() string {
	if l.genPath == "" {
		return ""
	}
	return filepath.Dir(l.genPath)
}
