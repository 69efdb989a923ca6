package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/labstack/echo/v4"

	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/validate"
	"github.com/stuffmart/stuffmart/shared/web"
)

type stuffRef struct {
	ID string `json:"id"`
}

type listRequest struct {
	Email    string   `json:"email"`
	Password string   `json:"password"`
	Price    int64    `json:"price"`
	Qty      int8     `json:"qty"`
	Stuff    stuffRef `json:"stuff"`
}

func (r *listRequest) Validate() error {
	var v validate.Errors
	v.Check(validate.Email(r.Email), "email", "Email must be valid")
	v.Check(validate.Len(r.Password) >= 8 && validate.Len(r.Password) <= 72, "password", "Password must be between 8 and 72 characters")
	v.Check(r.Price >= 1 && r.Price <= 1_000_000, "price", "Price must be from 1 to 1000000 cents")
	return v.Err()
}

func bindServer(t *testing.T) *echo.Echo {
	t.Helper()
	log, _ := newLogger()
	e := web.New(log, web.Options{BodyLimit: "1K"})
	e.POST("/stuff", func(c echo.Context) error {
		var req listRequest
		if err := web.Bind(c, &req); err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, req)
	})
	return e
}

const validBody = `{"email":"ann@uni.edu","password":"correct horse","price":1500,"qty":2,"stuff":{"id":"s1"}}`

func TestBind(t *testing.T) {
	t.Parallel()
	e := bindServer(t)
	tests := []struct {
		name        string
		body        string
		contentType string // "-" for none
		chunked     bool   // no Content-Length
		status      int
		items       []errs.Item
	}{
		{name: "valid", body: validBody, status: 201},
		{name: "valid with charset", body: validBody, contentType: "application/json; charset=utf-8", status: 201},
		{name: "valid with trailing white space", body: validBody + " \n\t", status: 201},
		{name: "JSON without a Content-Type (a cross-site simple request)", body: validBody, contentType: "-", status: 415,
			items: []errs.Item{{Message: "Content-Type must be application/json"}}},
		{name: "valid chunked", body: validBody, chunked: true, status: 201},

		{name: "number for a string", body: `{"email":123}`, status: 400, items: []errs.Item{{Message: "Must be a string", Field: "email"}}},
		{name: "query operator for a string", body: `{"email":{"$ne":null},"password":"x"}`, status: 400, items: []errs.Item{{Message: "Must be a string", Field: "email"}}},
		{name: "array for a string", body: `{"email":["a@b.co"]}`, status: 400, items: []errs.Item{{Message: "Must be a string", Field: "email"}}},
		{name: "float for an integer", body: `{"price":12.5}`, status: 400, items: []errs.Item{{Message: "Must be an integer", Field: "price"}}},
		{name: "string for an integer", body: `{"price":"1500"}`, status: 400, items: []errs.Item{{Message: "Must be an integer", Field: "price"}}},
		{name: "int64 overflow", body: `{"price":99999999999999999999}`, status: 400, items: []errs.Item{{Message: "Must be an integer", Field: "price"}}},
		{name: "exponent overflow", body: `{"price":1e30}`, status: 400, items: []errs.Item{{Message: "Must be an integer", Field: "price"}}},
		{name: "int8 overflow", body: `{"qty":300}`, status: 400, items: []errs.Item{{Message: "Must be an integer", Field: "qty"}}},
		{name: "bool for an integer", body: `{"price":true}`, status: 400, items: []errs.Item{{Message: "Must be an integer", Field: "price"}}},
		{name: "nested wrong type names the path", body: `{"stuff":{"id":7}}`, status: 400, items: []errs.Item{{Message: "Must be a string", Field: "stuff.id"}}},
		{name: "string for an object", body: `{"stuff":"s1"}`, status: 400, items: []errs.Item{{Message: "Has the wrong type", Field: "stuff"}}},

		{name: "unknown field", body: `{"email":"ann@uni.edu","isAdmin":true}`, status: 400, items: []errs.Item{{Message: "Unknown field", Field: "isAdmin"}}},
		{name: "unknown nested field", body: `{"stuff":{"id":"s1","$where":"1"}}`, status: 400, items: []errs.Item{{Message: "Unknown field", Field: "$where"}}},

		{name: "truncated JSON", body: `{"email":"ann@uni.edu"`, status: 400, items: []errs.Item{{Message: "Malformed JSON"}}},
		{name: "unquoted key", body: `{email:"ann@uni.edu"}`, status: 400, items: []errs.Item{{Message: "Malformed JSON"}}},
		{name: "single quotes", body: `{'email':'ann@uni.edu'}`, status: 400, items: []errs.Item{{Message: "Malformed JSON"}}},
		{name: "empty body", body: ``, status: 400, items: []errs.Item{{Message: "Request body must be a JSON object"}}},
		{name: "white space body", body: " \n ", status: 400, items: []errs.Item{{Message: "Request body must be a JSON object"}}},
		{name: "null body", body: `null`, status: 400, items: []errs.Item{{Message: "Request body must be a JSON object"}}},
		{name: "array body", body: `[]`, status: 400, items: []errs.Item{{Message: "Request body must be a JSON object"}}},
		{name: "string body", body: `"ann@uni.edu"`, status: 400, items: []errs.Item{{Message: "Request body must be a JSON object"}}},

		{name: "trailing garbage", body: validBody + `garbage`, status: 400, items: []errs.Item{{Message: "Request body must hold a single JSON object"}}},
		{name: "two objects", body: validBody + validBody, status: 400, items: []errs.Item{{Message: "Request body must hold a single JSON object"}}},
		{name: "stray closing brace", body: validBody + `}`, status: 400, items: []errs.Item{{Message: "Request body must hold a single JSON object"}}},
		{name: "stray closing bracket", body: validBody + `]`, status: 400, items: []errs.Item{{Message: "Request body must hold a single JSON object"}}},

		{name: "over the limit", body: `{"email":"` + strings.Repeat("a", 2000) + `"}`, status: 413, items: []errs.Item{{Message: "Request body too large"}}},
		{name: "over the limit, chunked", body: `{"email":"` + strings.Repeat("a", 2000) + `"}`, chunked: true, status: 413, items: []errs.Item{{Message: "Request body too large"}}},

		{name: "text/plain", body: validBody, contentType: "text/plain", status: 415, items: []errs.Item{{Message: "Content-Type must be application/json"}}},
		{name: "form", body: "email=ann%40uni.edu", contentType: "application/x-www-form-urlencoded", status: 415, items: []errs.Item{{Message: "Content-Type must be application/json"}}},
		{name: "multipart", body: validBody, contentType: "multipart/form-data; boundary=x", status: 415, items: []errs.Item{{Message: "Content-Type must be application/json"}}},
		{name: "unparsable Content-Type", body: validBody, contentType: "application/json; =", status: 415, items: []errs.Item{{Message: "Content-Type must be application/json"}}},

		{name: "every invalid field reported", body: `{"email":"Ann <ann@uni.edu>","password":"short","price":0}`, status: 400, items: []errs.Item{
			{Message: "Email must be valid", Field: "email"},
			{Message: "Password must be between 8 and 72 characters", Field: "password"},
			{Message: "Price must be from 1 to 1000000 cents", Field: "price"},
		}},
		{name: "one invalid field", body: `{"email":"ann@uni.edu","password":"correct horse","price":1000001}`, status: 400, items: []errs.Item{
			{Message: "Price must be from 1 to 1000000 cents", Field: "price"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = iotest.HalfReader(body) // opaque to NewRequest: no length
			}
			req := httptest.NewRequest(http.MethodPost, "/stuff", body)
			if tc.chunked {
				req.ContentLength = -1
			}
			switch tc.contentType {
			case "":
				req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			case "-":
			default:
				req.Header.Set(echo.HeaderContentType, tc.contentType)
			}
			rec := serve(e, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusCreated {
				var got listRequest
				if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
					t.Fatal(err)
				}
				want := listRequest{Email: "ann@uni.edu", Password: "correct horse", Price: 1500, Qty: 2, Stuff: stuffRef{ID: "s1"}}
				if got != want {
					t.Fatalf("bound %+v, want %+v", got, want)
				}
				return
			}
			if got := errorBody(t, rec); !reflect.DeepEqual(got, tc.items) {
				t.Fatalf("items %+v, want %+v", got, tc.items)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		r      func() io.Reader
		status int // 0: no error
	}{
		{"valid", func() io.Reader { return strings.NewReader(`{"id":"s1"}`) }, 0},
		{"nil reader", func() io.Reader { return nil }, 400},
		{"read error", func() io.Reader { return iotest.ErrReader(io.ErrClosedPipe) }, 400},
		{"max bytes reader", func() io.Reader {
			return http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(`{"id":"`+strings.Repeat("x", 100)+`"}`)), 10)
		}, 413},
		{"unknown field", func() io.Reader { return strings.NewReader(`{"id":"s1","price":1}`) }, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dst stuffRef
			err := web.Decode(tc.r(), &dst)
			if tc.status == 0 {
				if err != nil || dst.ID != "s1" {
					t.Fatalf("Decode = %v (dst %+v), want s1", err, dst)
				}
				return
			}
			e, ok := errs.As(err)
			if !ok || e.StatusCode() != tc.status {
				t.Fatalf("Decode error %v, want a client error with status %d", err, tc.status)
			}
		})
	}
}

func TestQueryInt(t *testing.T) {
	t.Parallel()
	log, _ := newLogger()
	e := web.New(log, web.Options{})
	e.GET("/stuff", func(c echo.Context) error {
		page, err := web.QueryInt(c, "page", 1, 1, 100)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]int{"page": page})
	})
	bad := []errs.Item{{Message: "Must be an integer from 1 to 100", Field: "page"}}
	tests := []struct {
		name   string
		query  string
		status int
		page   int
	}{
		{"absent", "", 200, 1},
		{"empty", "?page=", 200, 1},
		{"valid", "?page=7", 200, 7},
		{"lower bound", "?page=1", 200, 1},
		{"upper bound", "?page=100", 200, 100},
		{"first of repeated", "?page=3&page=9", 200, 3},
		{"operator key ignored", "?page[$gt]=1", 200, 1},
		{"operator key beside a value", "?page[$ne]=0&page=4", 200, 4},
		{"below range", "?page=0", 400, 0},
		{"negative", "?page=-5", 400, 0},
		{"above range", "?page=101", 400, 0},
		{"huge", "?page=99999999999999999999999", 400, 0},
		{"not a number", "?page=abc", 400, 0},
		{"float", "?page=1.5", 400, 0},
		{"json operator as value", "?page=%7B%22%24gt%22%3A1%7D", 400, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := serve(e, httptest.NewRequest(http.MethodGet, "/stuff"+tc.query, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status != 200 {
				if got := errorBody(t, rec); !reflect.DeepEqual(got, bad) {
					t.Fatalf("items %+v, want %+v", got, bad)
				}
				return
			}
			var got map[string]int
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got["page"] != tc.page {
				t.Fatalf("page %v (%v), want %d", got, err, tc.page)
			}
		})
	}
}
