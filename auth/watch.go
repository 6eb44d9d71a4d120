package auth

import (
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// watch reloads the accounts when another process writes the keychain (its write counter in
// the state directory changes), so the tray notices a CLI `login`, `logout` or `use` at once.
func (b *Broker) watch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	dir := b.vault.lock.dir()
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return err
	}
	gen := filepath.Base(b.vault.lock.genPath)
	b.bg.Add(1)
	go func() {
		defer b.bg.Done()
		defer w.Close()
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Base(ev.Name) != gen || !ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename) {
					continue
				}
				if err := b.vault.reloadIfChanged(); err != nil {
					b.log.Warn("reloading accounts changed by another process", "error", err)
					continue
				}
				b.rebuildIfIndexChanged()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				b.log.Warn("watching for other processes' changes", "error", err)
			case <-b.closed:
				return
			}
		}
	}()
	return nil
}
