package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// demo produces a realistic mix of customer events and consent changes for a
// fixed population of subjects. It is deterministic for a given seed apart
// from timestamps.
type demo struct {
	rng      *rand.Rand
	subjects int
	purposes []string
	seq      int64
	runID    string
}

func newDemo(seed uint64, subjects int, purposes []string) *demo {
	return &demo{
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		subjects: subjects,
		purposes: purposes,
		runID:    fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff),
	}
}

func (d *demo) subject() string { return fmt.Sprintf("cust-%05d", d.rng.IntN(d.subjects)) }

func (d *demo) nextID(kind string) string {
	d.seq++
	return fmt.Sprintf("%s-%s-%08d", kind, d.runID, d.seq)
}

// change returns a consent change for subject (or a random one). Initial
// changes are grants or denials; later ones also withdraw, expire or erase.
func (d *demo) change(subject string, initial bool) map[string]any {
	if subject == "" {
		subject = d.subject()
	}
	now := time.Now()
	action := "GRANT"
	r := d.rng.Float64()
	switch {
	case initial && r < 0.45:
		action = "DENY"
	case initial:
	case r < 0.02:
		action = "ERASE"
	case r < 0.30:
		action = "WITHDRAW"
	case r < 0.40:
		action = "DENY"
	}
	var purpose any
	if action != "ERASE" {
		purpose = map[string]any{"string": d.purposes[d.rng.IntN(len(d.purposes))]}
	}
	excluded := []any{}
	var expires any
	if action == "GRANT" {
		if d.rng.Float64() < 0.15 {
			excluded = append(excluded, "user.health")
		}
		if d.rng.Float64() < 0.10 {
			expires = map[string]any{"long.timestamp-millis": now.Add(time.Duration(10+d.rng.IntN(50)) * time.Second)}
		}
	}
	sources := []string{"preference-centre", "cookie-banner", "mobile-app", "support-agent"}
	return map[string]any{
		"change_id":           d.nextID("chg"),
		"subject_id":          subject,
		"purpose":             purpose,
		"action":              action,
		"legal_basis":         "CONSENT",
		"excluded_categories": excluded,
		"source":              sources[d.rng.IntN(len(sources))],
		"notice_version":      "2026-09",
		// A little jitter in capture time, as clients' clocks and queues
		// deliver changes slightly out of order.
		"captured_at": now.Add(-time.Duration(d.rng.IntN(500)) * time.Millisecond),
		"expires_at":  expires,
	}
}

func str(s string) map[string]any { return map[string]any{"string": s} }

var (
	pages    = []string{"/", "/shoes", "/shoes/trail-runner-3", "/garden/tools", "/pharmacy/vitamins", "/checkout", "/account"}
	agents   = []string{"Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1) Safari/604.1", "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0"}
	cities   = []string{"Lyon", "Berlin", "Porto", "Utrecht", "Gdansk"}
	products = []struct{ sku, name, cat, health string }{
		{"SKU-1001", "Trail runner 3", "shoes/running", ""},
		{"SKU-2040", "Pruning shears", "garden/tools", ""},
		{"SKU-3307", "Vitamin D3 1000 IU", "pharmacy/vitamins", "supplements"},
		{"SKU-3390", "Pregnancy test (2 pack)", "pharmacy/tests", "fertility"},
		{"SKU-4100", "Walking stick, adjustable", "health/mobility", "mobility aids"},
		{"SKU-5120", "Espresso beans 1kg", "grocery/coffee", ""},
	}
)

// event returns a customer event: its schema full name, version, and value.
func (d *demo) event() (string, int, map[string]any) {
	subject := d.subject()
	now := time.Now()
	ip := fmt.Sprintf("203.0.113.%d", d.rng.IntN(254)+1)
	base := map[string]any{"event_id": d.nextID("evt"), "subject_id": subject, "occurred_at": now}
	switch r := d.rng.Float64(); {
	case r < 0.30, r < 0.60:
		base["session_id"] = fmt.Sprintf("sess-%06d", d.rng.IntN(1000000))
		base["page_url"] = "https://shop.example" + pages[d.rng.IntN(len(pages))]
		base["duration_ms"] = int32(d.rng.IntN(60000))
		base["user_agent"] = str(agents[d.rng.IntN(len(agents))])
		base["ip_address"] = str(ip)
		base["geo"] = map[string]any{"consentgate.events.Geo": map[string]any{"country": "FR", "region": nil, "city": str(cities[d.rng.IntN(len(cities))])}}
		if r < 0.30 {
			base["page_title"] = str("Shop")
			return "consentgate.events.PageView", 1, base
		}
		base["title"] = str("Shop")
		base["referrer"] = str("https://search.example/?q=shoes")
		base["consent_banner_shown"] = d.rng.IntN(2) == 0
		base["device_type"] = []string{"DESKTOP", "MOBILE", "TABLET"}[d.rng.IntN(3)]
		return "consentgate.events.PageView", 2, base
	case r < 0.85:
		n := 1 + d.rng.IntN(3)
		items := make([]any, n)
		var total int64
		for i := range items {
			p := products[d.rng.IntN(len(products))]
			q := int32(1 + d.rng.IntN(3))
			price := int64(499 + d.rng.IntN(9000))
			total += int64(q) * price
			var health any
			if p.health != "" {
				health = str(p.health)
			}
			items[i] = map[string]any{"sku": p.sku, "name": p.name, "category": p.cat, "quantity": q, "price_minor": price, "health_category": health}
		}
		base["order_id"] = fmt.Sprintf("ORD-%08d", d.rng.IntN(100000000))
		base["currency"] = "EUR"
		base["total_minor"] = total
		base["items"] = items
		base["shipping_address"] = map[string]any{"consentgate.events.Address": map[string]any{
			"recipient": "Camille Martin", "street": "12 rue des Lilas", "postal_code": "69003",
			"city": cities[d.rng.IntN(len(cities))], "country": "FR"}}
		base["payment"] = map[string]any{"method": "CARD", "card_brand": str("visa"), "card_last4": str(fmt.Sprintf("%04d", d.rng.IntN(10000)))}
		base["email"] = str(subject + "@mail.example")
		base["phone"] = str(fmt.Sprintf("+33 6 %02d %02d %02d %02d", d.rng.IntN(100), d.rng.IntN(100), d.rng.IntN(100), d.rng.IntN(100)))
		base["ip_address"] = str(ip)
		return "consentgate.events.Purchase", 1, base
	default:
		action := []string{"OPEN", "OPEN", "CLICK", "UNSUBSCRIBE"}[d.rng.IntN(4)]
		base["email"] = subject + "@mail.example"
		base["campaign_id"] = fmt.Sprintf("cmp-2026-%02d", 1+d.rng.IntN(12))
		base["message_id"] = fmt.Sprintf("msg-%08d", d.rng.IntN(100000000))
		base["action"] = action
		base["link_url"] = nil
		if action == "CLICK" {
			base["link_url"] = str("https://shop.example/sale")
		}
		base["user_agent"] = str(agents[d.rng.IntN(len(agents))])
		base["ip_address"] = str(ip)
		return "consentgate.events.EmailEngagement", 1, base
	}
}
