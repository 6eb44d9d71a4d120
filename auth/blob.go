package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Values too large for one keychain item are split into chunks plus a manifest. The manifest
// lives in the item itself and is written last, so a crash mid-write leaves the previous value
// readable; chunks alternate between two slots so the previous value's chunks are only
// removed after the new manifest points elsewhere.
//
//	<key>            "ec1:<data>"                       small value, inline
//	<key>            "ec1m:{"slot":"a","n":3,...}"      manifest
//	<key>#a0..a2     raw parts of the data
const (
	inlinePrefix   = "ec1:"
	manifestPrefix = "ec1m:"
	maxChunks      = 256
)

// ErrCorruptItem: a keychain item could not be decoded (a chunk is missing or altered).
var ErrCorruptItem = errors.New("keychain item is damaged")

type manifest struct {
	Slot string `json:"slot"`
	N    int    `json:"n"`
	Len  int    `json:"len"`
	Sum  string `json:"sha256"`
}

// defaultMaxValue is the largest single keychain value written on this OS: Credential Manager
// refuses more than 2560 bytes, macOS's `security -i` command line 4096 (after base64).
func defaultMaxValue() int {
	switch runtime.GOOS {
	case "windows":
		return 2560
	case "darwin":
		return 2048
	default:
		return 512 << 10
	}
}

// blobStore stores byte values of any size in a SecretStore.
type blobStore struct {
	s   SecretStore
	max int // largest value per item
}

func newBlobStore(s SecretStore, max int) *blobStore {
	if max <= 0 {
		max = defaultMaxValue()
	}
	return &blobStore{s: s, max: max}
}

func chunkKey(key, slot string, i int) string { return key + "#" + slot + strconv.Itoa(i) }

// get returns the value stored under key, ErrSecretNotFound if there is none.
func (b *blobStore) get(key string) ([]byte, error) {
	v, err := b.s.Get(key)
	if err != nil {
		return nil, err
	}
	return b.decode(key, v)
}

func (b *blobStore) decode(key, v string) ([]byte, error) {
	switch {
	case strings.HasPrefix(v, inlinePrefix):
		return []byte(v[len(inlinePrefix):]), nil
	case strings.HasPrefix(v, manifestPrefix):
		m, err := parseManifest(v)
		if err != nil {
			return nil, fmt.Errorf("reading keychain item %s: %w", key, err)
		}
		var sb strings.Builder
		sb.Grow(m.Len)
		for i := 0; i < m.N; i++ {
			part, err := b.s.Get(chunkKey(key, m.Slot, i))
			if err != nil {
				if errors.Is(err, ErrSecretNotFound) {
					return nil, fmt.Errorf("reading keychain item %s: chunk %d of %d is missing: %w", key, i+1, m.N, ErrCorruptItem)
				}
				return nil, err
			}
			sb.WriteString(part)
		}
		data := []byte(sb.String())
		sum := sha256.Sum256(data)
		if len(data) != m.Len || hex.EncodeToString(sum[:]) != m.Sum {
			return nil, fmt.Errorf("reading keychain item %s: chunks do not add up to the recorded value: %w", key, ErrCorruptItem)
		}
		return data, nil
	default:
		return nil, fmt.Errorf("reading keychain item %s: unrecognised format: %w", key, ErrCorruptItem)
	}
}

func parseManifest(v string) (manifest, error) {
	var m manifest
	if err := json.Unmarshal([]byte(v[len(manifestPrefix):]), &m); err != nil {
		return m, fmt.Errorf("manifest is not valid JSON: %w", ErrCorruptItem)
	}
	if (m.Slot != "a" && m.Slot != "b") || m.N < 1 || m.N > maxChunks || m.Len < 0 || len(m.Sum) != 64 {
		return m, fmt.Errorf("manifest fields out of range: %w", ErrCorruptItem)
	}
	return m, nil
}

// current reads the manifest now in place, if the item is chunked.
func (b *blobStore) current(key string) (manifest, bool, error) {
	v, err := b.s.Get(key)
	if errors.Is(err, ErrSecretNotFound) {
		return manifest{}, false, nil
	}
	if err != nil {
		return manifest{}, false, err
	}
	if !strings.HasPrefix(v, manifestPrefix) {
		return manifest{}, false, nil
	}
	m, err := parseManifest(v)
	if err != nil {
		return manifest{}, false, nil // a damaged manifest is overwritten
	}
	return m, true, nil
}

// put stores data under key, replacing the previous value only once the new one is complete.
func (b *blobStore) put(key string, data []byte) error {
	old, chunked, err := b.current(key)
	if err != nil {
		return err
	}
	max := b.max
	if len(inlinePrefix)+len(data) <= max {
		err := b.s.Set(key, inlinePrefix+string(data))
		if err == nil {
			if chunked {
				b.deleteSlot(key, old.Slot, old.N)
			}
			return nil
		}
		if !errors.Is(err, ErrValueTooLarge) {
			return err
		}
		max = len(data) / 2 // the platform limit is lower than we thought: chunk
	}
	slot := "a"
	if chunked && old.Slot == "a" {
		slot = "b"
	}
	for {
		if max < 256 {
			return fmt.Errorf("writing keychain item %s: even %d-byte parts are refused: %w", key, max, ErrValueTooLarge)
		}
		parts := split(string(data), max)
		if len(parts) > maxChunks {
			return fmt.Errorf("writing keychain item %s: %d bytes need more than %d parts: %w", key, len(data), maxChunks, ErrValueTooLarge)
		}
		err := b.writeParts(key, slot, parts)
		if errors.Is(err, ErrValueTooLarge) {
			max /= 2
			continue
		}
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		mj, _ := json.Marshal(manifest{Slot: slot, N: len(parts), Len: len(data), Sum: hex.EncodeToString(sum[:])})
		if err := b.s.Set(key, manifestPrefix+string(mj)); err != nil {
			return err // the old value is still in place and whole
		}
		// Leftovers of this slot past the new end (an earlier, interrupted write) and the old slot.
		b.deleteSlot(key, slot, -len(parts))
		if chunked && old.Slot != slot {
			b.deleteSlot(key, old.Slot, old.N)
		}
		return nil
	}
}

func (b *blobStore) writeParts(key, slot string, parts []string) error {
	for i, p := range parts {
		if err := b.s.Set(chunkKey(key, slot, i), p); err != nil {
			return err
		}
	}
	return nil
}

// deleteSlot removes chunks 0..n-1 of slot; with n <= 0 it removes chunks from -n on until
// the first missing one (stray parts of an interrupted write).
func (b *blobStore) deleteSlot(key, slot string, n int) {
	if n > 0 {
		for i := 0; i < n; i++ {
			_ = b.s.Delete(chunkKey(key, slot, i))
		}
		n = -n
	}
	for i := -n; i < maxChunks; i++ {
		k := chunkKey(key, slot, i)
		if _, err := b.s.Get(k); err != nil {
			return
		}
		_ = b.s.Delete(k)
	}
}

// del removes the value and all its parts.
func (b *blobStore) del(key string) error {
	old, chunked, err := b.current(key)
	if err != nil && !errors.Is(err, ErrSecretNotFound) {
		return err
	}
	if err := b.s.Delete(key); err != nil && !errors.Is(err, ErrSecretNotFound) {
		return err
	}
	if chunked {
		b.deleteSlot(key, old.Slot, old.N)
	}
	for _, slot := range []string{"a", "b"} {
		b.deleteSlot(key, slot, 0)
	}
	return nil
}

// split cuts s into parts of at most max bytes, never inside a UTF-8 sequence.
func split(s string, max int) []string {
	var parts []string
	for len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 {
			cut = max
		}
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	return append(parts, s)
}
