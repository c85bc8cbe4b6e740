// The Go peer of bench/receiver-peers.sh: a WhatsApp webhook receiver as a Go team would
// write it with the standard library and franz-go. net/http serves POST /webhook; the
// X-Hub-Signature-256 header is checked with hmac.Equal (constant time) over the raw body
// (at most 4 MB); every messages[] / statuses[] item becomes one Kafka record (a small
// CloudEvent keyed <phone_number_id>:<customer>, the same content as
// bench/python-baseline/app.py), produced by franz-go with acks=all and idempotence (its
// default) and the default sticky-key partitioner (murmur2 on the key, as Kafka's Java
// client); the request is answered 200 only after every record was acknowledged, else 503.
// The linger is set to 2 ms like the Python peer's librdkafka, but franz-go's ProduceSync
// stops lingering and drains its partitions at once, so a request alone does not wait for it;
// records of concurrent requests mostly share batches when they arrive while produce requests
// are outstanding (up to 5 per broker with idempotence). A body that is not a JSON object is
// answered 200 and publishes nothing (as the Python
// peer). There is no GET handshake: the Python peer has none either.
//
// Usage: go-peer --listen 127.0.0.1:PORT --brokers 127.0.0.1:PORT --topic T --secret S
//
//	[--partitions 12]
//
// The topic is created with --partitions partitions (replication 1) if it does not exist.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const maxBody = 4 << 20

type payload struct {
	Entry []struct {
		ID      string `json:"id"`
		Changes []struct {
			Value struct {
				Metadata struct {
					PhoneNumberID string `json:"phone_number_id"`
				} `json:"metadata"`
				Messages []json.RawMessage `json:"messages"`
				Statuses []json.RawMessage `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type messageIDs struct {
	ID         string `json:"id"`
	From       string `json:"from"`
	FromUserID string `json:"from_user_id"`
}

type statusIDs struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	RecipientID     string `json:"recipient_id"`
	RecipientUserID string `json:"recipient_user_id"`
}

type messageData struct {
	WabaID        string          `json:"waba_id"`
	PhoneNumberID string          `json:"phone_number_id"`
	Message       json.RawMessage `json:"message"`
}

type statusData struct {
	WabaID        string          `json:"waba_id"`
	PhoneNumberID string          `json:"phone_number_id"`
	Status        json.RawMessage `json:"status"`
}

type cloudEvent struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	Type            string `json:"type"`
	Subject         string `json:"subject"`
	DataContentType string `json:"datacontenttype"`
	Data            any    `json:"data"`
}

var contentType = []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// records: one record per messages[] and statuses[] item of the payload.
func records(topic string, p *payload) ([]*kgo.Record, error) {
	var out []*kgo.Record
	add := func(key string, ev cloudEvent) error {
		value, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		out = append(out, &kgo.Record{Topic: topic, Key: []byte(key), Value: value, Headers: contentType})
		return nil
	}
	for _, entry := range p.Entry {
		source := "/whatsapp/business-accounts/" + entry.ID
		for _, change := range entry.Changes {
			phone := change.Value.Metadata.PhoneNumberID
			for _, raw := range change.Value.Messages {
				var m messageIDs
				if err := json.Unmarshal(raw, &m); err != nil {
					return nil, err
				}
				key := phone + ":" + firstNonEmpty(m.FromUserID, m.From)
				if err := add(key, cloudEvent{"1.0", "message:" + m.ID, source, "whatsapp.message.received",
					key, "application/json", messageData{entry.ID, phone, raw}}); err != nil {
					return nil, err
				}
			}
			for _, raw := range change.Value.Statuses {
				var s statusIDs
				if err := json.Unmarshal(raw, &s); err != nil {
					return nil, err
				}
				key := phone + ":" + firstNonEmpty(s.RecipientUserID, s.RecipientID)
				if err := add(key, cloudEvent{"1.0", "status:" + s.ID + ":" + s.Status, source, "whatsapp.status.updated",
					key, "application/json", statusData{entry.ID, phone, raw}}); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}

func webhook(client *kgo.Client, topic string, secret []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
			} else {
				w.WriteHeader(http.StatusBadRequest)
			}
			return
		}
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		expected := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(r.Header.Get("X-Hub-Signature-256")), []byte(expected)) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p payload
		if err := json.Unmarshal(body, &p); err != nil {
			w.WriteHeader(http.StatusOK) // not a JSON object of that shape: nothing to publish
			return
		}
		recs, err := records(topic, &p)
		if err != nil {
			w.WriteHeader(http.StatusOK)
			return
		}
		if len(recs) > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			defer cancel()
			if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				log.Printf("produce: %v", err)
				w.Header().Set("Retry-After", "5")
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	}
}

func ensureTopic(client *kgo.Client, topic string, partitions int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(client).CreateTopic(ctx, partitions, 1, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return err
	}
	if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
		return resp.Err
	}
	return nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8092", "address to serve on")
	brokers := flag.String("brokers", "", "Kafka bootstrap servers, comma-separated")
	topic := flag.String("topic", "bench-go.inbound", "topic to publish to")
	secret := flag.String("secret", "", "the app secret of X-Hub-Signature-256")
	partitions := flag.Int("partitions", 12, "partitions of the topic if it is created")
	flag.Parse()
	if *brokers == "" || *secret == "" {
		log.Fatal("--brokers and --secret are required")
	}

	client, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(*brokers, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default with acks=all
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.DefaultProduceTopic(*topic),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	if err := ensureTopic(client, *topic, int32(*partitions)); err != nil {
		log.Fatalf("creating topic %s: %v", *topic, err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/webhook", webhook(client, *topic, []byte(*secret)))
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		server.Shutdown(ctx)
	}()
	log.Printf("listening on %s, topic %s", *listen, *topic)
	if err := server.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	client.Flush(context.Background())
}
