// Package eventgen builds realistic customer events of the project's
// schemas for the dev stack's demo producer and the benchmark: page views in
// two schema versions (30 % each), purchases with health-related items now
// and then (25 %) and e-mail engagements (15 %), with personal data in
// every annotated field. The content is drawn from the caller's random
// source, so a seed gives the same events apart from timestamps.
package eventgen

import (
	"fmt"
	"math/rand/v2"
	"time"
)

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

// Event returns a customer event with id eventID about subject, drawing
// its content from rng: its schema full name, version, and value in
// goavro's native form (encode it with the catalog schema of that name and
// version).
func Event(rng *rand.Rand, eventID, subject string) (string, int, map[string]any) {
	now := time.Now()
	ip := fmt.Sprintf("203.0.113.%d", rng.IntN(254)+1)
	base := map[string]any{"event_id": eventID, "subject_id": subject, "occurred_at": now}
	switch r := rng.Float64(); {
	case r < 0.60:
		base["session_id"] = fmt.Sprintf("sess-%06d", rng.IntN(1000000))
		base["page_url"] = "https://shop.example" + pages[rng.IntN(len(pages))]
		base["duration_ms"] = int32(rng.IntN(60000))
		base["user_agent"] = str(agents[rng.IntN(len(agents))])
		base["ip_address"] = str(ip)
		base["geo"] = map[string]any{"consentgate.events.Geo": map[string]any{"country": "FR", "region": nil, "city": str(cities[rng.IntN(len(cities))])}}
		if r < 0.30 {
			base["page_title"] = str("Shop")
			return "consentgate.events.PageView", 1, base
		}
		base["title"] = str("Shop")
		base["referrer"] = str("https://search.example/?q=shoes")
		base["consent_banner_shown"] = rng.IntN(2) == 0
		base["device_type"] = []string{"DESKTOP", "MOBILE", "TABLET"}[rng.IntN(3)]
		return "consentgate.events.PageView", 2, base
	case r < 0.85:
		n := 1 + rng.IntN(3)
		items := make([]any, n)
		var total int64
		for i := range items {
			p := products[rng.IntN(len(products))]
			q := int32(1 + rng.IntN(3))
			price := int64(499 + rng.IntN(9000))
			total += int64(q) * price
			var health any
			if p.health != "" {
				health = str(p.health)
			}
			items[i] = map[string]any{"sku": p.sku, "name": p.name, "category": p.cat, "quantity": q, "price_minor": price, "health_category": health}
		}
		base["order_id"] = fmt.Sprintf("ORD-%08d", rng.IntN(100000000))
		base["currency"] = "EUR"
		base["total_minor"] = total
		base["items"] = items
		base["shipping_address"] = map[string]any{"consentgate.events.Address": map[string]any{
			"recipient": "Camille Martin", "street": "12 rue des Lilas", "postal_code": "69003",
			"city": cities[rng.IntN(len(cities))], "country": "FR"}}
		base["payment"] = map[string]any{"method": "CARD", "card_brand": str("visa"), "card_last4": str(fmt.Sprintf("%04d", rng.IntN(10000)))}
		base["email"] = str(subject + "@mail.example")
		base["phone"] = str(fmt.Sprintf("+33 6 %02d %02d %02d %02d", rng.IntN(100), rng.IntN(100), rng.IntN(100), rng.IntN(100)))
		base["ip_address"] = str(ip)
		return "consentgate.events.Purchase", 1, base
	default:
		action := []string{"OPEN", "OPEN", "CLICK", "UNSUBSCRIBE"}[rng.IntN(4)]
		base["email"] = subject + "@mail.example"
		base["campaign_id"] = fmt.Sprintf("cmp-2026-%02d", 1+rng.IntN(12))
		base["message_id"] = fmt.Sprintf("msg-%08d", rng.IntN(100000000))
		base["action"] = action
		base["link_url"] = nil
		if action == "CLICK" {
			base["link_url"] = str("https://shop.example/sale")
		}
		base["user_agent"] = str(agents[rng.IntN(len(agents))])
		base["ip_address"] = str(ip)
		return "consentgate.events.EmailEngagement", 1, base
	}
}
