package server

import (
	"context"

	exchangev1 "github.com/alltogether/exchange/proto/alltogether/exchange/v1"
	"github.com/alltogether/exchange/store"
)

// defaultBackupChunk is how many bytes a backup message carries by
// default.
const defaultBackupChunk = 1 << 20

// adminService implements AdminService.
type adminService struct {
	exchangev1.UnimplementedAdminServiceServer
	store *store.Store
}

// chunkSender cuts the snapshot into messages.
type chunkSender struct {
	stream exchangev1.AdminService_BackupServer
	buf    []byte
	first  *exchangev1.BackupResponse
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		room := cap(c.buf) - len(c.buf)
		take := min(room, len(p))
		c.buf, p = append(c.buf, p[:take]...), p[take:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkSender) flush() error {
	msg := &exchangev1.BackupResponse{Data: c.buf}
	if c.first != nil {
		msg.Revision, msg.Size = c.first.GetRevision(), c.first.GetSize()
		c.first = nil
	}
	err := c.stream.Send(msg)
	c.buf = c.buf[:0]
	return err
}

// Backup streams a consistent snapshot of the database (secretariat only,
// by access rule).
func (a *adminService) Backup(req *exchangev1.BackupRequest, stream exchangev1.AdminService_BackupServer) error {
	size := int(req.GetChunkSize())
	if size == 0 {
		size = defaultBackupChunk
	}
	c := &chunkSender{stream: stream, buf: make([]byte, 0, size)}
	err := a.store.Backup(stream.Context(), c, func(revision, total int64) {
		c.first = &exchangev1.BackupResponse{Revision: revision, Size: total}
	})
	if err != nil {
		return err
	}
	if len(c.buf) > 0 || c.first != nil {
		return c.flush()
	}
	return nil
}

// GetStorageStatus reports the store's size, quota, revisions and audit
// head (secretariat only, by access rule).
func (a *adminService) GetStorageStatus(ctx context.Context, _ *exchangev1.GetStorageStatusRequest) (*exchangev1.GetStorageStatusResponse, error) {
	st, err := a.store.Status(ctx)
	if err != nil {
		return nil, err
	}
	return &exchangev1.GetStorageStatusResponse{
		Size: st.Size, MaxSize: st.MaxSize, Revision: st.Revision, CompactedRevision: st.Compacted,
		AuditSequence: st.AuditSequence, AuditHead: st.AuditHead,
	}, nil
}
