package handlers

// The send form (GET /requests/new, POST /requests): parsing and validation before
// anything is sent to Lumin (security.md §8.6, lumin-api.md §16.3).

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/connectlumin/app/lumin"
	"github.com/connectlumin/app/views"
)

const (
	// maxSigners caps the signer rows: a form is not a bulk mailer (security.md §8.6).
	maxSigners = 20
	// maxUploadBytes is the PDF cap: Lumin's free plan takes 20 MB (lumin-api.md §16.3).
	maxUploadBytes = 20 << 20
	// sendBodyLimit is the route's body cap: the upload plus the form fields and the
	// multipart framing. Anything larger is refused with 413 before it is buffered.
	sendBodyLimit = 25 << 20
	// defaultExpiryDays is the form's suggested expiry.
	defaultExpiryDays = 14
	// maxFieldLen bounds every non-title text field (names, emails, URL).
	maxFieldLen = 2048
	dateLayout  = "2006-01-02"
)

// sendForm is a parsed POST /requests: the view model to re-render, and the input for
// Lumin once valid.
type sendForm struct {
	model    views.NewRequestModel
	input    lumin.SendInput
	addRow   bool
	removeAt int // -1: none
}

// newSendModel is the empty form.
func newSendModel(now time.Time) views.NewRequestModel {
	return views.NewRequestModel{
		Signers:     []views.SignerField{{Index: 0}},
		SigningType: "SAME_TIME",
		Expiry:      now.UTC().AddDate(0, 0, defaultExpiryDays).Format(dateLayout),
		MinExpiry:   now.UTC().Format(dateLayout),
		MaxSigners:  maxSigners,
		CanAdd:      true,
	}
}

// parseExpiryDate reads an <input type=date> value as the end of that day in UTC, so
// "today" still means a moment in the future until midnight UTC.
func parseExpiryDate(v string, now time.Time) (time.Time, string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, "Choose an expiry date."
	}
	d, err := time.Parse(dateLayout, v)
	if err != nil {
		return time.Time{}, "Use a date like 2030-01-31."
	}
	end := d.Add(24*time.Hour - time.Millisecond)
	if !end.After(now) {
		return time.Time{}, "The expiry date must be in the future."
	}
	if end.After(now.AddDate(5, 0, 0)) {
		return time.Time{}, "The expiry date must be within five years."
	}
	return end, ""
}

// validEmail accepts a bare address only ("a@example.com", not "A <a@example.com>"),
// parsed by net/mail so the address Lumin mails is exactly what the user typed.
func validEmail(v string) bool {
	if v == "" || len(v) > 254 {
		return false
	}
	a, err := mail.ParseAddress(v)
	return err == nil && a.Address == v && a.Name == ""
}

// formValue returns a trimmed single value, cut to maxFieldLen bytes.
func formValue(f *multipart.Form, vals url.Values, key string) string {
	var v string
	if f != nil {
		if vs := f.Value[key]; len(vs) > 0 {
			v = vs[0]
		}
	} else {
		v = vals.Get(key)
	}
	v = strings.TrimSpace(v)
	if len(v) > maxFieldLen*2 {
		v = v[:maxFieldLen*2]
	}
	return v
}

// parseSendForm reads and validates POST /requests. r.Body must already be capped at
// sendBodyLimit (the bodyLimit middleware does, from s.bodyLimits). It returns errBodyTooLarge when the body or the file is over its cap.
// ok is false when the model carries errors (or an add/remove re-render was asked).
func parseSendForm(r *http.Request, now time.Time) (sf sendForm, ok bool, err error) {
	sf.model = newSendModel(now)
	sf.removeAt = -1
	var mf *multipart.Form
	var vals url.Values
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "multipart/form-data") {
		// All of it in memory: the body is already capped at 25 MiB by the route.
		if err := r.ParseMultipartForm(sendBodyLimit); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return sf, false, errBodyTooLarge
			}
			return sf, false, errBadForm
		}
		mf = r.MultipartForm
	} else {
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return sf, false, errBodyTooLarge
			}
			return sf, false, errBadForm
		}
		vals = r.PostForm
	}
	get := func(k string) string { return formValue(mf, vals, k) }
	m := &sf.model
	valid := true

	m.RequestTitle = get("title")
	switch n := utf8.RuneCountInString(m.RequestTitle); {
	case n == 0:
		m.TitleError, valid = "Give the request a title.", false
	case n > 255:
		m.TitleError, valid = "The title must be at most 255 characters.", false
	}

	m.SigningType = get("signing_type")
	if m.SigningType != "SAME_TIME" && m.SigningType != "ORDER" {
		if m.SigningType == "" {
			m.SigningType = "SAME_TIME"
		} else {
			m.TypeError, valid = "Choose “same time” or “in order”.", false
			m.SigningType = "SAME_TIME"
		}
	}

	m.Expiry = get("expires_at")
	at, msg := parseExpiryDate(m.Expiry, now)
	if msg != "" {
		m.ExpiryError, valid = msg, false
	}

	// Signer rows: the hidden count says how many rows the form had; rows are read up to
	// one past the cap so an over-long list is reported, not silently cut.
	count, _ := strconv.Atoi(get("signer_count"))
	if count < 1 {
		count = 1
	}
	if count > maxSigners+1 {
		count = maxSigners + 1
	}
	if v := get("remove_signer"); v != "" {
		if i, err := strconv.Atoi(v); err == nil && i >= 0 && i < count {
			sf.removeAt = i
		}
	}
	sf.addRow = get("add_signer") != ""
	m.Signers = m.Signers[:0]
	for i := 0; i < count; i++ {
		if i == sf.removeAt {
			continue
		}
		m.Signers = append(m.Signers, views.SignerField{
			Name:  get("signer_name_" + strconv.Itoa(i)),
			Email: get("signer_email_" + strconv.Itoa(i)),
			Group: get("signer_group_" + strconv.Itoa(i)),
		})
	}
	if sf.addRow && len(m.Signers) < maxSigners {
		m.Signers = append(m.Signers, views.SignerField{})
	}
	if len(m.Signers) == 0 {
		m.Signers = append(m.Signers, views.SignerField{})
	}
	for i := range m.Signers {
		m.Signers[i].Index = i
	}
	m.CanAdd = len(m.Signers) < maxSigners

	// The file: exactly one of an uploaded PDF or an https URL.
	m.FileURL = get("file_url")
	var file []byte
	var fileName string
	if mf != nil {
		if fhs := mf.File["file"]; len(fhs) > 0 && fhs[0].Size > 0 {
			fh := fhs[0]
			if fh.Size > maxUploadBytes {
				return sf, false, errBodyTooLarge
			}
			b, err := readUpload(fh)
			if err != nil {
				return sf, false, err
			}
			file, fileName = b, safeFileName(fh.Filename)
		}
	}

	if sf.addRow || sf.removeAt >= 0 {
		// A row edit re-renders the form without validating or sending anything.
		m.FileDropped = file != nil
		clearErrors(m)
		return sf, false, nil
	}

	switch {
	case file != nil && m.FileURL != "":
		m.FileError, valid = "Upload a PDF or give a file URL, not both.", false
	case file == nil && m.FileURL == "":
		m.FileError, valid = "Upload a PDF or give a file URL.", false
	case file != nil:
		// Magic bytes, not the client's Content-Type or file name.
		if !bytes.HasPrefix(file, []byte("%PDF-")) {
			m.FileError, valid = "The upload must be a PDF file.", false
		}
	default:
		u, err := url.Parse(m.FileURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || len(m.FileURL) > maxFieldLen {
			m.FileError, valid = "The file URL must be an https:// link.", false
		}
	}

	var signers []lumin.Signer
	live := 0
	for i := range m.Signers {
		s := &m.Signers[i]
		if s.Name == "" && s.Email == "" && s.Group == "" && len(m.Signers) > 1 {
			continue // an untouched extra row
		}
		live++
		if s.Name == "" {
			s.NameError, valid = "Enter the signer's name.", false
		} else if utf8.RuneCountInString(s.Name) > 255 {
			s.NameError, valid = "The name must be at most 255 characters.", false
		}
		if !validEmail(s.Email) {
			s.EmailError, valid = "Enter an email address like name@example.com.", false
		}
		g := 0
		if m.SigningType == "ORDER" || s.Group != "" {
			n, err := strconv.Atoi(s.Group)
			if err != nil || n < 1 || n > maxSigners {
				s.GroupError, valid = "The order must be a number from 1 to "+strconv.Itoa(maxSigners)+".", false
			}
			g = n
		}
		signers = append(signers, lumin.Signer{Name: s.Name, Email: s.Email, Group: g})
	}
	if live > maxSigners {
		m.SignersError, valid = "At most "+strconv.Itoa(maxSigners)+" signers.", false
	}
	if !valid {
		// Browsers never re-fill a file input: say so instead of losing it silently.
		m.FileDropped = file != nil
		return sf, false, nil
	}
	sf.input = lumin.SendInput{
		Title:       m.RequestTitle,
		FileURL:     m.FileURL,
		FileName:    fileName,
		File:        file,
		Signers:     signers,
		SigningType: m.SigningType,
		ExpiresAt:   at,
	}
	return sf, true, nil
}

// errBadForm is a body that is not a form at all (400).
var errBadForm = errors.New("malformed form body")

// readUpload reads one uploaded file with its own cap.
func readUpload(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, errBadForm
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUploadBytes+1))
	if err != nil {
		return nil, errBadForm
	}
	if len(b) > maxUploadBytes {
		return nil, errBodyTooLarge
	}
	return b, nil
}

// safeFileName keeps the base name's safe characters only; Lumin shows it to signers.
func safeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 100 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_', r == ' ':
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	if s == "" || s[0] == '.' {
		s = "document.pdf"
	}
	if !strings.HasSuffix(strings.ToLower(s), ".pdf") {
		s += ".pdf"
	}
	return s
}

// clearErrors drops validation messages for a pure add/remove re-render.
func clearErrors(m *views.NewRequestModel) {
	m.TitleError, m.FileError, m.SignersError, m.TypeError, m.ExpiryError = "", "", "", "", ""
	for i := range m.Signers {
		m.Signers[i].NameError, m.Signers[i].EmailError, m.Signers[i].GroupError = "", "", ""
	}
}
