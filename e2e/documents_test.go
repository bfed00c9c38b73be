package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// TestDocumentsThroughTheCLI drives 'exchangectl documents' against a real
// exchanged over mutual TLS: UNICEF uploads a 3.5 MiB manual shared with a
// working group (ILO a member, World Vision an observer); the file goes up
// in chunks, members and observers find it by niche, country and kind and
// download it byte for byte (recorded, as UNICEF asked, for UNICEF alone
// to see), AFESIP (outside the audience) gets the exit
// code of NOT_FOUND, a second version keeps the first, a file that is not
// what its extension says is refused and stores nothing, and the download
// counts add up.
func TestDocumentsThroughTheCLI(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	sec := newSession(dir, "EXCHANGE_SERVER="+srv.addr)
	sessions := map[string]session{}
	for _, id := range []string{"ilo", "unicef", "afesip", "world-vision"} {
		sec.ok(t, "agencies", "create", id, "--name", strings.ToUpper(id), "--kind", "un-agency", "--country", "KH",
			"--niche", "prevention", "--coverage", "KH-12")
		sec.ok(t, "certs", "issue", "--agency", id, "--out-dir", "certs-"+id)
		sessions[id] = agencySession(t, srv.addr, filepath.Join(dir, "certs-"+id), id)
	}
	sec.ok(t, "working-groups", "create", "unwg", "--name", "UN Working Group on Trafficking", "--kind", "working-group",
		"--member", "ilo,unicef", "--observer", "world-vision")
	ilo, unicef, afesip, wv := sessions["ilo"], sessions["unicef"], sessions["afesip"], sessions["world-vision"]

	manual := make([]byte, 7<<19)
	if _, err := rand.Read(manual); err != nil {
		t.Fatal(err)
	}
	copy(manual, "%PDF-1.7\n")
	path := writeFile(t, unicef.dir, "manual.pdf", manual)
	var v1 exchangev1.DocumentVersion
	unicef.jsonOne(t, &v1, "documents", "upload", path, "--title", "Case management manual", "--kind", "manual",
		"--niche", "prevention", "--country", "KH", "--share-group", "unwg", "--record-downloaders")
	sum := sha256.Sum256(manual)
	if v1.GetVersion() != 1 || v1.GetSizeBytes() != int64(len(manual)) || v1.GetSha256() != hex.EncodeToString(sum[:]) {
		t.Fatalf("uploaded %v", &v1)
	}
	doc := strings.TrimSuffix(strings.TrimPrefix(v1.GetName(), "agencies/"), "/versions/1")
	doc = strings.Replace(doc, "/documents/", "/", 1)

	for _, s := range []session{ilo, wv} {
		found := jsonList(t, s, func() *exchangev1.Document { return new(exchangev1.Document) },
			"documents", "search", "--niche", "prevention", "--country", "KH", "--kind", "manual")
		if len(found) != 1 || found[0].GetLatestVersion() != 1 {
			t.Fatalf("search found %v", found)
		}
		if none := jsonList(t, s, func() *exchangev1.Document { return new(exchangev1.Document) }, "documents", "search", "--kind", "fact-sheet"); len(none) != 0 {
			t.Fatalf("search for fact sheets found %v", none)
		}
		s.ok(t, "documents", "download", doc)
		got, err := os.ReadFile(filepath.Join(s.dir, "manual.pdf"))
		if err != nil || !bytes.Equal(got, manual) {
			t.Fatalf("downloaded %d bytes, want the %d uploaded (%v)", len(got), len(manual), err)
		}
	}
	if list := jsonList(t, afesip, func() *exchangev1.Document { return new(exchangev1.Document) }, "documents", "list"); len(list) != 0 {
		t.Fatalf("afesip lists %v", list)
	}
	afesip.fails(t, 3, []string{"NOT_FOUND"}, "documents", "download", doc, "-o", "x.pdf")
	if _, err := os.Stat(filepath.Join(afesip.dir, "x.pdf")); !os.IsNotExist(err) {
		t.Errorf("a refused download left a file: %v", err)
	}

	// A PNG named .pdf is refused by its first bytes; nothing is stored.
	fake := writeFile(t, unicef.dir, "v2.pdf", append([]byte("\x89PNG\r\n\x1a\n"), manual[:1000]...))
	unicef.fails(t, 6, []string{"INVALID_ARGUMENT", "metadata.content_type"}, "documents", "upload", fake, "--document", doc)
	v2file := writeFile(t, unicef.dir, "manual-v2.pdf", []byte("%PDF-1.7\nsecond edition\n"))
	var v2 exchangev1.DocumentVersion
	unicef.jsonOne(t, &v2, "documents", "upload", v2file, "--document", doc)
	if v2.GetVersion() != 2 {
		t.Fatalf("second version %v", &v2)
	}
	ilo.ok(t, "documents", "download", doc, "--version", "1", "-o", "v1.pdf")
	if got, _ := os.ReadFile(filepath.Join(ilo.dir, "v1.pdf")); !bytes.Equal(got, manual) {
		t.Fatal("version 1 changed when version 2 was uploaded")
	}
	versions := jsonList(t, unicef, func() *exchangev1.DocumentVersion { return new(exchangev1.DocumentVersion) }, "documents", "versions", doc)
	if len(versions) != 2 || versions[0].GetDownloadCount() != 3 || versions[1].GetDownloadCount() != 0 {
		t.Fatalf("versions %v", versions)
	}
	// Recorded on the owner's request, for the owner alone.
	if got := strings.Join(versions[0].GetDownloaders(), ","); got != "agencies/ilo,agencies/world-vision" {
		t.Errorf("the owner sees downloaders %q", got)
	}
	if seen := jsonList(t, ilo, func() *exchangev1.DocumentVersion { return new(exchangev1.DocumentVersion) }, "documents", "versions", doc); len(seen[0].GetDownloaders()) != 0 {
		t.Errorf("a reader sees downloaders %v", seen[0].GetDownloaders())
	}
}
