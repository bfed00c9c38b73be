package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alltogether/exchange/store/kv"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
)

// Documents are stored in three parts: the Document record, one
// DocumentVersion record per complete version, and the versions' files cut
// into chunks of DocumentChunkBytes, each under its own key. An upload
// writes its chunks in transactions of one chunk each (well inside the 8
// MiB and 8192 operations one etcd transaction may hold), under a version
// number reserved for it in bucketDocumentUploads; only the last
// transaction writes the version record and moves the document's
// latest_version, so a half-uploaded version is never visible. An upload
// that fails is cleaned up by AbortDocumentUpload; one that was abandoned
// (the server stopped) is cleaned up by the next upload to the document or
// by SweepDocumentUploads.

// DocumentChunkBytes is the most a stored chunk of a document holds: 1 MiB.
const DocumentChunkBytes = 1 << 20

// documentCollection is the collection id in document names,
// "agencies/{agency}/documents/{document}".
const documentCollection = "/documents/"

// versionCollection is the collection id in document version names.
const versionCollection = "/versions/"

// chunksPerCleanup bounds the chunks one cleanup transaction deletes.
const chunksPerCleanup = 64

var documents = table[*exchangev1.Document]{
	bucket: bucketDocuments,
	newT:   func() *exchangev1.Document { return new(exchangev1.Document) },
}

var documentVersions = table[*exchangev1.DocumentVersion]{
	bucket: bucketDocumentVersions,
	newT:   func() *exchangev1.DocumentVersion { return new(exchangev1.DocumentVersion) },
}

// DocumentName returns "agencies/{agencyID}/documents/{id}".
func DocumentName(agencyID, id string) string {
	return AgencyPrefix + agencyID + documentCollection + id
}

// DocumentVersionName returns
// "agencies/{agency}/documents/{document}/versions/{version}".
func DocumentVersionName(document string, version int32) string {
	return document + versionCollection + strconv.Itoa(int(version))
}

// SplitDocumentName returns the agency id and document id of
// "agencies/{agency}/documents/{document}"; ok is false for anything else.
func SplitDocumentName(name string) (agencyID, id string, ok bool) {
	rest, found := strings.CutPrefix(name, AgencyPrefix)
	if !found {
		return "", "", false
	}
	agencyID, id, ok = strings.Cut(rest, documentCollection)
	return agencyID, id, ok && agencyID != "" && len(id) == planIDLen
}

func documentKey(name string) []byte {
	agencyID, id, _ := SplitDocumentName(name)
	return joinKey(agencyID, id)
}

// documentVersionKey is document id u32(version).
func documentVersionKey(name string, version int32) []byte {
	_, id, _ := SplitDocumentName(name)
	return append([]byte(id), u32(uint32(version))...)
}

// documentChunkKey is document id u32(version) ∅ u32(chunk).
func documentChunkKey(name string, version int32, chunk uint32) []byte {
	return append(append(documentVersionKey(name, version), sep), u32(chunk)...)
}

func documentUploadKey(name string) []byte {
	_, id, _ := SplitDocumentName(name)
	return []byte(id)
}

// CreateDocument stores a new document owned by "agencies/{agencyID}",
// without versions. A retry with the same Op.RequestID returns the
// document the first call created.
func (s *Store) CreateDocument(ctx context.Context, op Op, agencyID string, d *exchangev1.Document) (*exchangev1.Document, error) {
	var out *exchangev1.Document
	err := s.update(ctx, op, func(w *writeTx) error {
		if name, ok := w.replayed(); ok {
			got, found, err := documents.get(w.tx, documentKey(name))
			if err != nil || !found {
				return internal("request id refers to a missing document", err)
			}
			out = got
			return nil
		}
		d := proto.Clone(d).(*exchangev1.Document)
		d.Owner, d.LatestVersion = AgencyPrefix+agencyID, 0
		id := newID(w.now)
		created, err := documents.create(w, joinKey(agencyID, id), DocumentName(agencyID, id), d)
		out = created
		return err
	})
	return out, err
}

// GetDocument returns the document.
func (s *Store) GetDocument(ctx context.Context, name string) (*exchangev1.Document, error) {
	var out *exchangev1.Document
	err := s.view(ctx, func(tx kv.Tx) error {
		d, ok, err := documents.get(tx, documentKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		out = d
		return nil
	})
	return out, err
}

// DocumentFilter selects documents in ListDocuments.
type DocumentFilter struct {
	// AgencyID limits the list to one owner; empty means every owner.
	AgencyID string
	// Keep, when set, decides on each document (visibility and filters).
	Keep func(*exchangev1.Document) bool
	// Fingerprint identifies the query's other filters, for page tokens.
	Fingerprint string
}

// ListDocuments returns one page of documents ordered by owner id, then
// creation.
func (s *Store) ListDocuments(ctx context.Context, f DocumentFilter, p Page) ([]*exchangev1.Document, string, error) {
	var prefix []byte
	if f.AgencyID != "" {
		prefix = joinKey(f.AgencyID, "")
	}
	var items []*exchangev1.Document
	var token string
	err := s.view(ctx, func(tx kv.Tx) error {
		var err error
		items, token, err = paginate(s.pageTokens(), tx, bucketDocuments, prefix, p, query("documents", f.AgencyID, f.Fingerprint), func(_, v []byte) (*exchangev1.Document, bool, error) {
			d := new(exchangev1.Document)
			if err := unmarshal(v, d); err != nil {
				return nil, false, err
			}
			return d, f.Keep == nil || f.Keep(d), nil
		})
		return err
	})
	return items, token, err
}

// BeginDocumentUpload reserves the document's next version for an upload
// and returns its number. An upload of the document already in progress
// fails with KindFailedPrecondition naming it, unless it started before
// staleBefore: it is then abandoned, and its chunks are deleted first.
func (s *Store) BeginDocumentUpload(ctx context.Context, op Op, name string, staleBefore time.Time) (int32, error) {
	for {
		var version int32
		var stale *exchangev1.DocumentUpload
		err := s.update(ctx, op, func(w *writeTx) error {
			version, stale = 0, nil
			d, ok, err := documents.get(w.tx, documentKey(name))
			if err != nil {
				return err
			}
			if !ok {
				return notFound(name)
			}
			if cur, ok, err := pendingUpload(w.tx, name); err != nil {
				return err
			} else if ok {
				if !cur.GetStartTime().AsTime().Before(staleBefore) {
					return &Error{Kind: KindFailedPrecondition, Resource: name, Message: fmt.Sprintf(
						"%s: version %d is being uploaded since %s; wait until that upload ends", name, cur.GetVersion(), cur.GetStartTime().AsTime().UTC().Format(time.RFC3339))}
				}
				stale = cur
				return nil
			}
			version = d.GetLatestVersion() + 1
			b, err := marshal(&exchangev1.DocumentUpload{Document: name, Version: version, StartTime: timestamppb.New(w.now)})
			if err != nil {
				return err
			}
			if err := w.tx.Bucket(bucketDocumentUploads).Put(documentUploadKey(name), b); err != nil {
				return internal("cannot reserve the document version", err)
			}
			return nil
		})
		if err != nil || stale == nil {
			return version, err
		}
		if err := s.AbortDocumentUpload(ctx, op, name, stale.GetVersion()); err != nil {
			return 0, err
		}
	}
}

func pendingUpload(tx kv.Tx, name string) (*exchangev1.DocumentUpload, bool, error) {
	v := tx.Bucket(bucketDocumentUploads).Get(documentUploadKey(name))
	if v == nil {
		return nil, false, nil
	}
	u := new(exchangev1.DocumentUpload)
	if err := unmarshal(v, u); err != nil {
		return nil, false, err
	}
	return u, true, nil
}

// uploading checks, in a write, that version of the document is the
// upload in progress.
func uploading(tx kv.Tx, name string, version int32) error {
	u, ok, err := pendingUpload(tx, name)
	if err != nil {
		return err
	}
	if !ok || u.GetVersion() != version {
		return &Error{Kind: KindFailedPrecondition, Resource: name,
			Message: fmt.Sprintf("%s: the upload of version %d is no longer in progress (it was abandoned and cleaned up)", name, version)}
	}
	return nil
}

// PutDocumentChunk stores chunk number index (from 0) of the version being
// uploaded, in a transaction of its own; data holds at most
// DocumentChunkBytes.
func (s *Store) PutDocumentChunk(ctx context.Context, op Op, name string, version int32, index uint32, data []byte) error {
	if len(data) > DocumentChunkBytes {
		return internal(fmt.Sprintf("a document chunk holds at most %d bytes, not %d", DocumentChunkBytes, len(data)), nil)
	}
	return s.update(ctx, op, func(w *writeTx) error {
		if err := uploading(w.tx, name, version); err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketDocumentChunks).Put(documentChunkKey(name, version, index), data); err != nil {
			return internal("cannot write the document chunk", err)
		}
		return nil
	})
}

// CompleteDocumentUpload makes the version being uploaded visible: it
// stores v (its content type, file name, size, checksum) as the version
// record and moves the document's latest_version to it, in one
// transaction. The caller has checked the chunks it stored against v.
func (s *Store) CompleteDocumentUpload(ctx context.Context, op Op, name string, v *exchangev1.DocumentVersion) (*exchangev1.DocumentVersion, error) {
	var out *exchangev1.DocumentVersion
	err := s.update(ctx, op, func(w *writeTx) error {
		if err := uploading(w.tx, name, v.GetVersion()); err != nil {
			return err
		}
		if err := w.tx.Bucket(bucketDocumentUploads).Delete(documentUploadKey(name)); err != nil {
			return internal("cannot end the upload", err)
		}
		nv := proto.Clone(v).(*exchangev1.DocumentVersion)
		nv.DownloadCount, nv.Downloaders = 0, nil
		created, err := documentVersions.create(w, documentVersionKey(name, v.GetVersion()), DocumentVersionName(name, v.GetVersion()), nv)
		if err != nil {
			return err
		}
		out = created
		_, err = documents.modify(w, documentKey(name), name, "", func(d *exchangev1.Document) error {
			d.LatestVersion = v.GetVersion()
			return nil
		})
		return err
	})
	return out, err
}

// AbortDocumentUpload deletes the chunks of an upload that did not
// complete, a bounded number per transaction, and then its reservation.
// Nothing of the upload stays. It may use the size quota's reserve, as
// erasures do: an upload refused because the file is full must still be
// cleaned up, and the cleanup frees more than it writes.
func (s *Store) AbortDocumentUpload(ctx context.Context, op Op, name string, version int32) error {
	prefix := append(documentVersionKey(name, version), sep)
	for {
		more := false
		err := s.updateUsingReserve(ctx, op, func(w *writeTx) error {
			more = false
			if _, ok, err := documentVersions.get(w.tx, documentVersionKey(name, version)); err != nil {
				return err
			} else if ok {
				return internal(fmt.Sprintf("%s: version %d is complete and cannot be aborted", name, version), nil)
			}
			var keys [][]byte
			c := w.tx.Bucket(bucketDocumentChunks).Cursor()
			for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
				if len(keys) == chunksPerCleanup {
					more = true
					break
				}
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := w.tx.Bucket(bucketDocumentChunks).Delete(k); err != nil {
					return internal("cannot delete a document chunk", err)
				}
			}
			if more {
				return nil
			}
			if u, ok, err := pendingUpload(w.tx, name); err != nil {
				return err
			} else if ok && u.GetVersion() == version {
				if err := w.tx.Bucket(bucketDocumentUploads).Delete(documentUploadKey(name)); err != nil {
					return internal("cannot end the upload", err)
				}
			}
			return nil
		})
		if err != nil || !more {
			return err
		}
	}
}

// SweepDocumentUploads cleans up every upload that started before
// staleBefore (abandoned when a server stopped mid-upload) and returns how
// many it cleaned up.
func (s *Store) SweepDocumentUploads(ctx context.Context, op Op, staleBefore time.Time) (int, error) {
	var stale []*exchangev1.DocumentUpload
	err := s.view(ctx, func(tx kv.Tx) error {
		stale = nil
		return tx.Bucket(bucketDocumentUploads).ForEach(func(_, v []byte) error {
			u := new(exchangev1.DocumentUpload)
			if err := unmarshal(v, u); err != nil {
				return err
			}
			if u.GetStartTime().AsTime().Before(staleBefore) {
				stale = append(stale, u)
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	for i, u := range stale {
		if err := s.AbortDocumentUpload(ctx, op, u.GetDocument(), u.GetVersion()); err != nil {
			return i, err
		}
	}
	return len(stale), nil
}

// GetDocumentVersion returns a complete version of the document; version 0
// means the latest. KindNotFound when the document has no such version.
func (s *Store) GetDocumentVersion(ctx context.Context, name string, version int32) (*exchangev1.DocumentVersion, error) {
	var out *exchangev1.DocumentVersion
	err := s.view(ctx, func(tx kv.Tx) error {
		d, ok, err := documents.get(tx, documentKey(name))
		if err != nil {
			return err
		}
		if !ok {
			return notFound(name)
		}
		if version == 0 {
			version = d.GetLatestVersion()
		}
		v, ok, err := documentVersions.get(tx, documentVersionKey(name, version))
		if err != nil {
			return err
		}
		if !ok {
			return &Error{Kind: KindNotFound, Resource: name, Message: fmt.Sprintf("%s has no version %d", name, version)}
		}
		out = v
		return nil
	})
	return out, err
}

// ListDocumentVersions returns the document's complete versions, oldest
// first. A document has at most as many versions as uploads completed;
// they are returned in one list.
func (s *Store) ListDocumentVersions(ctx context.Context, name string) ([]*exchangev1.DocumentVersion, error) {
	var out []*exchangev1.DocumentVersion
	_, id, _ := SplitDocumentName(name)
	err := s.view(ctx, func(tx kv.Tx) error {
		out = nil
		if _, ok, err := documents.get(tx, documentKey(name)); err != nil {
			return err
		} else if !ok {
			return notFound(name)
		}
		c := tx.Bucket(bucketDocumentVersions).Cursor()
		for k, v := c.Seek([]byte(id)); k != nil && bytes.HasPrefix(k, []byte(id)); k, v = c.Next() {
			dv := new(exchangev1.DocumentVersion)
			if err := unmarshal(v, dv); err != nil {
				return err
			}
			out = append(out, dv)
		}
		return nil
	})
	return out, err
}

// ReadDocumentChunk returns chunk number index (from 0) of a complete
// version, in a read of its own, so that a download holds no transaction
// while it sends.
func (s *Store) ReadDocumentChunk(ctx context.Context, name string, version int32, index uint32) ([]byte, error) {
	var out []byte
	err := s.view(ctx, func(tx kv.Tx) error {
		if tx.Bucket(bucketDocumentVersions).Get(documentVersionKey(name, version)) == nil {
			return &Error{Kind: KindNotFound, Resource: name, Message: fmt.Sprintf("%s has no version %d", name, version)}
		}
		v := tx.Bucket(bucketDocumentChunks).Get(documentChunkKey(name, version, index))
		if v == nil {
			return internal(fmt.Sprintf("%s version %d lacks chunk %d", name, version, index), nil)
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// CountDocumentDownload adds one to the version's download count and,
// when downloader is not empty, adds it to the version's downloaders
// unless it is there already. The caller decides whether the document
// records downloaders.
func (s *Store) CountDocumentDownload(ctx context.Context, op Op, name string, version int32, downloader string) (*exchangev1.DocumentVersion, error) {
	var out *exchangev1.DocumentVersion
	vname := DocumentVersionName(name, version)
	err := s.update(ctx, op, func(w *writeTx) error {
		v, err := documentVersions.modify(w, documentVersionKey(name, version), vname, "", func(v *exchangev1.DocumentVersion) error {
			v.DownloadCount++
			if downloader != "" && !slices.Contains(v.Downloaders, downloader) {
				v.Downloaders = append(v.Downloaders, downloader)
			}
			return nil
		})
		out = v
		return err
	})
	return out, err
}

// DocumentStorage reports how many chunks and upload reservations the
// store holds for the document, complete versions and uploads in progress
// alike: what a refused or abandoned upload must leave at zero beyond the
// complete versions.
func (s *Store) DocumentStorage(ctx context.Context, name string) (chunks, uploads int, err error) {
	_, id, _ := SplitDocumentName(name)
	err = s.view(ctx, func(tx kv.Tx) error {
		chunks, uploads = 0, 0
		c := tx.Bucket(bucketDocumentChunks).Cursor()
		for k, _ := c.Seek([]byte(id)); k != nil && bytes.HasPrefix(k, []byte(id)); k, _ = c.Next() {
			chunks++
		}
		if tx.Bucket(bucketDocumentUploads).Get([]byte(id)) != nil {
			uploads = 1
		}
		return nil
	})
	return chunks, uploads, err
}
