package luminfake

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"
)

// seedSigner is one signer of a seeded request; "" email means the owner.
type seedSigner struct {
	email, name string
	group       int
	signed      bool
	declined    bool
}

type seedRequest struct {
	title       string
	status      string // the status it must end up in (checked by seed's tests)
	signingType string
	created     time.Duration // before now
	updated     time.Duration // before now
	expiresIn   time.Duration // after now
	fromUI      bool          // created in Lumin's UI, not through the API
	signers     []seedSigner
}

var (
	seedCharles  = seedSigner{email: "charles.babbage@example.com", name: "Charles Babbage"}
	seedMary     = seedSigner{email: "mary.somerville@example.com", name: "Mary Somerville"}
	seedAugustus = seedSigner{email: "augustus.demorgan@example.org", name: "Augustus De Morgan"}
	seedJoseph   = seedSigner{email: "joseph.jacquard@example.net", name: "Joseph Marie Jacquard"}
	seedOwner    = seedSigner{} // the seeded user herself
)

func (s seedSigner) g(group int) seedSigner { s.group = group; return s }
func (s seedSigner) done() seedSigner       { s.signed = true; return s }

const seedDay = 24 * time.Hour

// seedRequests is the first user's history: every status of lumin-api.md §16.2, both
// signing types, created over the last five weeks. The WAITING_FOR_PROCESSING one never
// finishes processing, so a client's back-off can be seen; the UI-created one cannot be
// cancelled through the API.
var seedRequests = []seedRequest{
	{title: "Mutual NDA — Analytical Engines Ltd", status: statusNeedToSign, signingType: signingSameTime,
		created: 2 * seedDay, updated: 1 * seedDay, expiresIn: 12 * seedDay, signers: []seedSigner{seedOwner, seedCharles.done()}},
	{title: "Consulting agreement Q3", status: statusNeedToSign, signingType: signingOrder,
		created: 4 * seedDay, updated: 4 * seedDay, expiresIn: 10 * seedDay, signers: []seedSigner{seedOwner.g(1), seedMary.g(2)}},
	{title: "Office lease renewal — 12 St James's Square", status: statusWaiting, signingType: signingOrder,
		created: 9 * seedDay, updated: 6 * seedDay, expiresIn: 21 * seedDay, signers: []seedSigner{seedOwner.g(1).done(), seedAugustus.g(2), seedCharles.g(3)}},
	{title: "Contractor onboarding pack", status: statusWaiting, signingType: signingSameTime,
		created: 6 * seedDay, updated: 5 * seedDay, expiresIn: 20 * time.Hour, signers: []seedSigner{seedCharles, seedMary}},
	{title: "Board resolution 2024-07", status: statusWaiting, signingType: signingSameTime, fromUI: true,
		created: 12 * seedDay, updated: 3 * seedDay, expiresIn: 18 * seedDay, signers: []seedSigner{seedOwner.done(), seedAugustus, seedCharles.done()}},
	{title: "Research grant application", status: statusWaiting, signingType: signingOrder,
		created: 1 * seedDay, updated: 1 * seedDay, expiresIn: 30 * seedDay, signers: []seedSigner{seedMary.g(1), seedOwner.g(2)}},
	{title: "Statement of work #42 — Difference Engine", status: statusApproved, signingType: signingOrder,
		created: 20 * seedDay, updated: 15 * seedDay, expiresIn: 10 * seedDay, signers: []seedSigner{seedOwner.g(1).done(), seedCharles.g(2).done()}},
	{title: "Employee handbook acknowledgement", status: statusApproved, signingType: signingSameTime,
		created: 34 * seedDay, updated: 30 * seedDay, expiresIn: 0, signers: []seedSigner{seedOwner.done(), seedMary.done(), seedAugustus.done()}},
	{title: "Software licence — Jacquard looms", status: statusRejected, signingType: signingSameTime,
		created: 16 * seedDay, updated: 14 * seedDay, expiresIn: 14 * seedDay, signers: []seedSigner{seedOwner.done(), {email: seedJoseph.email, name: seedJoseph.name, declined: true}}},
	{title: "Equipment purchase order", status: statusCancelled, signingType: signingSameTime,
		created: 25 * seedDay, updated: 24 * seedDay, expiresIn: 5 * seedDay, signers: []seedSigner{seedOwner, seedAugustus}},
	{title: "Partnership agreement (text tags)", status: statusFailed, signingType: signingSameTime,
		created: 8 * seedDay, updated: 8 * seedDay, expiresIn: 22 * seedDay, signers: []seedSigner{seedOwner, seedCharles}},
	{title: "Invoice approval — July", status: statusProcessing, signingType: signingSameTime,
		created: 2 * time.Hour, updated: 2 * time.Hour, expiresIn: 7 * seedDay, signers: []seedSigner{seedOwner, seedMary}},
}

// seed gives the first user the requests of seedRequests; the other users start empty.
// Ids are fixed (66a0f5eed0…01, …02, …) so documentation and demos can name them.
func (f *Fake) seed() {
	if len(f.opts.Users) == 0 {
		return
	}
	u := &f.opts.Users[0]
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.requests == nil {
		f.requests = map[string]*sigRequest{}
	}
	for i, spec := range seedRequests {
		sr := &sigRequest{
			id:          fmt.Sprintf("66a0f5eed0%014x", i+1),
			owner:       u,
			title:       spec.title,
			signingType: spec.signingType,
			createdAt:   now.Add(-spec.created).Truncate(time.Millisecond),
			updatedAt:   now.Add(-spec.updated).Truncate(time.Millisecond),
			expiresAt:   now.Add(spec.expiresIn).Truncate(time.Millisecond),
			fromAPI:     !spec.fromUI,
			seeded:      true,
		}
		if spec.expiresIn == 0 { // a finished request whose deadline passed long ago
			sr.expiresAt = sr.createdAt.Add(14 * seedDay)
		}
		for _, ss := range spec.signers {
			s := &sigSigner{email: ss.email, name: ss.name, group: max(ss.group, 1), token: randomToken("sgn_")}
			if ss.email == "" {
				s.email, s.name = u.Email, u.Name
			}
			if ss.signed {
				s.isApproved, s.signedAt, s.viewed = true, sr.updatedAt, true
			}
			sr.signers = append(sr.signers, s)
		}
		advanceLocked(sr)
		switch spec.status {
		case statusProcessing:
			sr.status = statusProcessing
			for _, s := range sr.signers {
				s.status = statusProcessing
			}
		case statusFailed:
			sr.status, sr.reason = statusFailed, failReason
			for _, s := range sr.signers {
				s.status = statusFailed
			}
		case statusCancelled:
			sr.status = statusCancelled
		case statusRejected:
			for j, ss := range spec.signers {
				if ss.declined {
					sr.signers[j].status, sr.signers[j].signedAt = statusRejected, sr.updatedAt
					sr.status, sr.reason = statusRejected, "Declined by "+sr.signers[j].email
				}
			}
		}
		sr.file = makePDF(sr.title, "", "Seeded sandbox document for "+u.Name+".")
		f.requests[sr.id] = sr
	}
}

// RequestIDs returns the ids of the signature requests owned by the user with that email,
// newest first. Lumin has no list endpoint (lumin-api.md §16.4); this is for tests, demos
// and the sandbox start-up banner.
func (f *Fake) RequestIDs(email string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var rs []*sigRequest
	for _, sr := range f.requests {
		if sr.owner != nil && strings.EqualFold(sr.owner.Email, email) {
			rs = append(rs, sr)
		}
	}
	slices.SortFunc(rs, func(a, b *sigRequest) int {
		if c := b.createdAt.Compare(a.createdAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	ids := make([]string, len(rs))
	for i, sr := range rs {
		ids[i] = sr.id
	}
	return ids
}

// makePDF builds a minimal valid one-page PDF 1.4 showing lines of text (Helvetica,
// WinAnsi): enough for viewers, downloads and "%PDF-" checks, with a correct xref table.
func makePDF(lines ...string) []byte {
	var content bytes.Buffer
	content.WriteString("BT /F1 14 Tf 56 770 Td 18 TL\n")
	for i, l := range lines {
		if i == 1 {
			content.WriteString("/F1 11 Tf\n")
		}
		content.WriteString("(" + pdfString(truncateRunes(l, 90)) + ") Tj T*\n")
	}
	content.WriteString("ET\n")

	objects := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%sendstream", content.Len(), content.String()),
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objects))
	for i, o := range objects {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objects)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objects)+1, xref)
	return b.Bytes()
}

// pdfString escapes s for a PDF literal string; characters outside Latin-1 print as '?'
// and typographic dashes as '-', so any title is safe to embed.
func pdfString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '—' || r == '–':
			b.WriteByte('-')
		case r == '’' || r == '‘':
			b.WriteByte('\'')
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r >= 0xa0 && r <= 0xff:
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// seedTemplates are the first user's Sign templates (lumin-api.md §16.3): two of type
// "lumin" with two signer roles, one in each signing type, and one "pdf" template, which
// send-from-template refuses (422). Templates are read-only in the API, so they are fixed
// values rather than per-Fake state; their times are fixed dates in the past for the
// same reason. Ids carry Lumin's "sign_" prefix and are stable so demos can name them.
var seedTemplates = []signTemplate{
	{id: "sign_66b2d0c1e0" + "00000000000001", kind: templateLumin, name: "Mutual NDA", signingType: signingSameTime,
		roles:   []templateRole{{"Client", 1}, {"Provider", 2}},
		created: time.Date(2024, 3, 4, 9, 30, 0, 0, time.UTC), updated: time.Date(2024, 6, 17, 14, 5, 12, 0, time.UTC)},
	{id: "sign_66b2d0c1e0" + "00000000000002", kind: templateLumin, name: "Consulting agreement", signingType: signingOrder,
		roles:   []templateRole{{"Client", 1}, {"Provider", 2}},
		created: time.Date(2024, 4, 22, 11, 0, 0, 0, time.UTC), updated: time.Date(2024, 4, 22, 11, 0, 0, 0, time.UTC)},
	{id: "sign_66b2d0c1e0" + "00000000000003", kind: templatePDF, name: "Supplier onboarding form (PDF)", signingType: signingSameTime,
		roles:   []templateRole{{"Supplier", 1}},
		created: time.Date(2024, 5, 9, 16, 45, 30, 0, time.UTC), updated: time.Date(2024, 7, 1, 8, 15, 0, 0, time.UTC)},
}

// templatesOf returns u's templates: the seeded ones for the first user (the user with
// signature requests, see seed), none for anyone else.
func (f *Fake) templatesOf(u *User) []signTemplate {
	if u == nil || len(f.opts.Users) == 0 || u.ID != f.opts.Users[0].ID {
		return nil
	}
	return seedTemplates
}
