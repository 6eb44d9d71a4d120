package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// The settings shown in the README and the docs load as they are: a reader may copy them.
func TestDocumentedSettingsLoad(t *testing.T) {
	docs, _ := filepath.Glob("../docs/*.md")
	n := 0
	for _, doc := range append([]string{"../README.md"}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for i, blk := range regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(b, -1) {
			n++
			if _, err := Parse(blk[1], fmt.Sprintf("%s, settings block %d", filepath.Base(doc), i+1)); err != nil {
				t.Errorf("%v", err)
			}
		}
	}
	if n == 0 {
		t.Fatal("no settings shown in the README or docs: is the pattern right?")
	}
}
