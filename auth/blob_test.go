package auth

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// faultStore is a SecretStore with Windows' value limit that can fail the n-th write, like a
// process killed (or a keychain erroring) halfway through a chunked write.
type faultStore struct {
	MemoryStore
	mu        sync.Mutex
	sets      int
	failAt    int // 1-based index of the Set that fails; 0 = none
	maxSeen   int
	failErr   error
	deletesOK bool
}

func newFaultStore(max int) *faultStore {
	return &faultStore{MemoryStore: MemoryStore{MaxValue: max}, failErr: errors.New("simulated crash")}
}

func (f *faultStore) Set(key, value string) error {
	f.mu.Lock()
	f.sets++
	n := f.sets
	if len(value) > f.maxSeen && len(value) <= f.MaxValue {
		f.maxSeen = len(value)
	}
	f.mu.Unlock()
	if f.failAt != 0 && n == f.failAt {
		return f.failErr
	}
	return f.MemoryStore.Set(key, value)
}

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	const alphabet = `abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789{}":,._-`
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return b
}

func TestBlobRoundTripUnderWindowsLimit(t *testing.T) {
	for _, size := range []int{0, 1, 100, 2556, 2557, 2560, 5000, 10_000, 40_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			st := newFaultStore(2560)
			b := newBlobStore(st, 2560)
			data := randomData(size, uint64(size))
			if err := b.put("cache:x", data); err != nil {
				t.Fatalf("put %d bytes: %v", size, err)
			}
			got, err := b.get("cache:x")
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("round trip changed %d bytes of data", size)
			}
			for _, k := range st.Keys() {
				v, _ := st.Get(k)
				if len(v) > 2560 {
					t.Errorf("item %s holds %d bytes, over the 2560-byte limit", k, len(v))
				}
			}
			wantItems := 1
			if size+len(inlinePrefix) > 2560 {
				wantItems = 1 + (size+2559)/2560
			}
			if n := len(st.Keys()); n < wantItems {
				t.Errorf("%d items for %d bytes, want at least %d", n, size, wantItems)
			}
		})
	}
}

// The platform limit may be lower than the blob store assumes: it must notice and chunk.
func TestBlobLearnsLowerLimit(t *testing.T) {
	st := newFaultStore(2560)
	b := newBlobStore(st, 1<<20)
	data := randomData(9000, 1)
	if err := b.put("k", data); err != nil {
		t.Fatalf("put: %v", err)
	}
	got, err := b.get("k")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get after learning the limit: %v (equal=%v)", err, bytes.Equal(got, data))
	}
}

// A write that fails at any point leaves the previous value whole and readable, and a later
// successful write leaves no stray chunks behind.
func TestBlobCrashAtEveryWriteKeepsOldValue(t *testing.T) {
	for _, sizes := range [][2]int{{9000, 12000}, {12000, 9000}, {100, 9000}, {9000, 100}} {
		oldData, newData := randomData(sizes[0], 1), randomData(sizes[1], 2)
		// How many Sets does a clean replacement take?
		probe := newFaultStore(2560)
		pb := newBlobStore(probe, 2560)
		if err := pb.put("k", oldData); err != nil {
			t.Fatal(err)
		}
		before := probe.sets
		if err := pb.put("k", newData); err != nil {
			t.Fatal(err)
		}
		writes := probe.sets - before
		for failAt := 1; failAt <= writes; failAt++ {
			t.Run(fmt.Sprintf("%d→%d/fail%d", sizes[0], sizes[1], failAt), func(t *testing.T) {
				st := newFaultStore(2560)
				b := newBlobStore(st, 2560)
				if err := b.put("k", oldData); err != nil {
					t.Fatal(err)
				}
				st.failAt = st.sets + failAt
				if err := b.put("k", newData); err == nil {
					t.Fatalf("write %d was made to fail but put succeeded", failAt)
				}
				got, err := b.get("k")
				if err != nil {
					t.Fatalf("after a failed write the item is unreadable: %v", err)
				}
				if !bytes.Equal(got, oldData) && !bytes.Equal(got, newData) {
					t.Fatalf("after a failed write the item holds neither the old nor the new value")
				}
				if failAt < writes && !bytes.Equal(got, oldData) {
					t.Fatalf("the new value became visible before its manifest was written")
				}
				// Recovery: the next write succeeds and cleans up after the interrupted one.
				st.failAt = 0
				if err := b.put("k", newData); err != nil {
					t.Fatalf("write after the failure: %v", err)
				}
				if got, err := b.get("k"); err != nil || !bytes.Equal(got, newData) {
					t.Fatalf("get after recovery: %v", err)
				}
				assertOnlyCurrentChunks(t, st, "k")
			})
		}
	}
}

// assertOnlyCurrentChunks checks that the store holds the item and exactly the chunks its
// manifest names.
func assertOnlyCurrentChunks(t *testing.T, st *faultStore, key string) {
	t.Helper()
	v, err := st.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{key}
	if strings.HasPrefix(v, manifestPrefix) {
		m, err := parseManifest(v)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < m.N; i++ {
			want = append(want, chunkKey(key, m.Slot, i))
		}
	}
	got := st.Keys()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("store holds %v, want exactly %v", got, want)
	}
}

func TestBlobDetectsDamage(t *testing.T) {
	st := newFaultStore(2560)
	b := newBlobStore(st, 2560)
	if err := b.put("k", randomData(8000, 3)); err != nil {
		t.Fatal(err)
	}
	v, _ := st.Get("k")
	m, err := parseManifest(v)
	if err != nil {
		t.Fatal(err)
	}
	ck := chunkKey("k", m.Slot, 1)
	part, _ := st.Get(ck)
	_ = st.MemoryStore.Set(ck, "X"+part[1:])
	if _, err := b.get("k"); !errors.Is(err, ErrCorruptItem) {
		t.Fatalf("altered chunk: got %v, want ErrCorruptItem", err)
	}
	_ = st.Delete(ck)
	if _, err := b.get("k"); !errors.Is(err, ErrCorruptItem) {
		t.Fatalf("missing chunk: got %v, want ErrCorruptItem", err)
	}
	_ = st.MemoryStore.Set("k", "something else")
	if _, err := b.get("k"); !errors.Is(err, ErrCorruptItem) {
		t.Fatalf("foreign value: got %v, want ErrCorruptItem", err)
	}
}

func TestBlobDeleteLeavesNothing(t *testing.T) {
	st := newFaultStore(2560)
	b := newBlobStore(st, 2560)
	if err := b.put("k", randomData(20000, 4)); err != nil {
		t.Fatal(err)
	}
	if err := b.put("k", randomData(7000, 5)); err != nil {
		t.Fatal(err)
	}
	if err := b.del("k"); err != nil {
		t.Fatal(err)
	}
	if keys := st.Keys(); len(keys) != 0 {
		t.Fatalf("after delete the store still holds %v", keys)
	}
	if _, err := b.get("k"); !errors.Is(err, ErrSecretNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
}

func TestSplitKeepsUTF8Whole(t *testing.T) {
	s := strings.Repeat("aé", 1000)
	for _, max := range []int{3, 4, 5, 100, 257} {
		parts := split(s, max)
		if strings.Join(parts, "") != s {
			t.Fatalf("max %d: parts do not join back", max)
		}
		for _, p := range parts {
			if !strings.HasPrefix(p, "a") && !strings.HasPrefix(p, "é") {
				t.Fatalf("max %d: a part starts inside a character: %q", max, p[:2])
			}
		}
	}
}

// FuzzBlob: any value round-trips under any limit, and decoding any stored string never panics.
func FuzzBlob(f *testing.F) {
	f.Add([]byte(`{"RefreshToken":{}}`), 300, "ec1m:{\"slot\":\"a\",\"n\":2,\"len\":5,\"sha256\":\"00\"}")
	f.Add(bytes.Repeat([]byte("é"), 2000), 256, "ec1:abc")
	f.Add([]byte{}, 2560, "")
	f.Add([]byte("x"), 1<<20, "ec1m:{}")
	f.Fuzz(func(t *testing.T, data []byte, max int, stored string) {
		if max < 256 || max > 1<<20 || len(data) > 200_000 {
			return
		}
		st := newFaultStore(max)
		b := newBlobStore(st, max)
		if err := b.put("k", data); err != nil {
			if !errors.Is(err, ErrValueTooLarge) {
				t.Fatalf("put: %v", err)
			}
			return
		}
		got, err := b.get("k")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("round trip: %v", err)
		}
		_, _ = b.decode("k2", stored)
	})
}
