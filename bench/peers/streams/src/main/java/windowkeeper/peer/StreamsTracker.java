package windowkeeper.peer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.Serializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The tracker's peer: a Kafka Streams application that keeps each contact's 24 h customer
 * service window. Reads the inbound topic (key = contact key, value = the CloudEvents JSON),
 * opens a window on a `whatsapp.message.received` record (start = the message's Meta
 * timestamp) or extends an open one, and writes `whatsapp.window.opened` when it opens and
 * `whatsapp.window.closed` when a wall-clock punctuator (every second, a scan of the store)
 * finds it past its end. One persistent key-value store (RocksDB), changelogged; everything
 * else is the Streams defaults for the chosen processing guarantee.
 *
 * <p>Usage: java -jar streams-peer.jar BOOTSTRAP APPLICATION_ID INPUT_TOPIC OUTPUT_TOPIC
 * GUARANTEE STATE_DIR, GUARANTEE being exactly_once_v2 or at_least_once. Prints
 * "state RUNNING <epoch ms>" (and every other state change) on stdout.
 */
public final class StreamsTracker {
    static final ObjectMapper MAPPER = new ObjectMapper();
    static final String STORE = "windows";
    static final long WINDOW_SECONDS = 24 * 60 * 60;
    static final String RECEIVED = "whatsapp.message.received";

    /** A contact's open window, stored as JSON. */
    public record Window(long openedAt, long expiresAt, String lastMessageId) {}

    public static void main(String[] args) throws Exception {
        if (args.length != 6) {
            System.err.println("usage: BOOTSTRAP APPLICATION_ID INPUT_TOPIC OUTPUT_TOPIC "
                    + "exactly_once_v2|at_least_once STATE_DIR");
            System.exit(2);
        }
        String bootstrap = args[0], applicationId = args[1], input = args[2], output = args[3];
        String guarantee = args[4], stateDir = args[5];
        if (!guarantee.equals(StreamsConfig.EXACTLY_ONCE_V2) && !guarantee.equals(StreamsConfig.AT_LEAST_ONCE)) {
            System.err.println("guarantee must be exactly_once_v2 or at_least_once");
            System.exit(2);
        }
        createOutputTopic(bootstrap, input, output);

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        props.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        // commit.interval.ms, threads, caching, producer and consumer settings: the Streams
        // defaults (commit every 100 ms with exactly_once_v2, every 30 s with at_least_once).

        Serde<Window> windowSerde = Serdes.serdeFrom(new JsonSerializer<>(), new JsonDeserializer<>(Window.class));
        Topology topology = new Topology();
        topology.addSource("inbound", Serdes.String().deserializer(), Serdes.String().deserializer(), input);
        topology.addProcessor("windows", WindowProcessor::new, "inbound");
        topology.addStateStore(
                Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(STORE), Serdes.String(), windowSerde),
                "windows");
        topology.addSink("events", output, Serdes.String().serializer(), Serdes.String().serializer(), "windows");

        KafkaStreams streams = new KafkaStreams(topology, props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            System.out.println("state " + now + " " + System.currentTimeMillis());
            System.out.flush();
            if (now == KafkaStreams.State.NOT_RUNNING || now == KafkaStreams.State.ERROR) {
                stopped.countDown();
            }
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close(Duration.ofSeconds(10));
            stopped.countDown();
        }));
        streams.start();
        stopped.await();
    }

    /** The output topic with the input's partition count, unless it exists. */
    static void createOutputTopic(String bootstrap, String input, String output) throws Exception {
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
            int partitions = admin.describeTopics(List.of(input)).allTopicNames().get()
                    .get(input).partitions().size();
            try {
                admin.createTopics(List.of(new NewTopic(output, partitions, (short) -1))).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
    }

    static final class WindowProcessor implements Processor<String, String, String, String> {
        private ProcessorContext<String, String> context;
        private KeyValueStore<String, Window> store;

        @Override
        public void init(ProcessorContext<String, String> context) {
            this.context = context;
            this.store = context.getStateStore(STORE);
            context.schedule(Duration.ofSeconds(1), PunctuationType.WALL_CLOCK_TIME, this::closeExpired);
        }

        @Override
        public void process(Record<String, String> record) {
            if (record.key() == null || record.value() == null) {
                return;
            }
            JsonNode event;
            try {
                event = MAPPER.readTree(record.value());
            } catch (IOException e) {
                return; // not JSON: not ours to judge
            }
            if (!RECEIVED.equals(event.path("type").asText())) {
                return;
            }
            JsonNode message = event.path("data").path("message");
            long at;
            try {
                at = Long.parseLong(message.path("timestamp").asText());
            } catch (NumberFormatException e) {
                return;
            }
            String messageId = message.path("id").asText(null);
            long end = at + WINDOW_SECONDS;
            Window open = store.get(record.key());
            if (open != null && at < open.expiresAt()) {
                if (end > open.expiresAt()) {
                    store.put(record.key(), new Window(open.openedAt(), end, messageId));
                }
                return;
            }
            if (open != null) {
                // Past its end but not yet closed by the punctuator: close it first.
                context.forward(record.withValue(event("whatsapp.window.closed", record.key(), open, open.expiresAt())));
            }
            Window window = new Window(at, end, messageId);
            store.put(record.key(), window);
            context.forward(record.withValue(event("whatsapp.window.opened", record.key(), window, at)));
        }

        /** Wall-clock punctuator: closes every window past its end. */
        private void closeExpired(long nowMs) {
            long now = nowMs / 1000;
            List<KeyValue<String, Window>> expired = new ArrayList<>();
            try (KeyValueIterator<String, Window> all = store.all()) {
                while (all.hasNext()) {
                    KeyValue<String, Window> entry = all.next();
                    if (entry.value.expiresAt() <= now) {
                        expired.add(entry);
                    }
                }
            }
            for (KeyValue<String, Window> entry : expired) {
                store.delete(entry.key);
                context.forward(new Record<>(entry.key,
                        event("whatsapp.window.closed", entry.key, entry.value, entry.value.expiresAt()), nowMs));
            }
        }
    }

    /** A window event as CloudEvents JSON. */
    static String event(String type, String contact, Window window, long time) {
        String kind = type.substring(type.lastIndexOf('.') + 1);
        ObjectNode event = MAPPER.createObjectNode();
        event.put("specversion", "1.0");
        event.put("id", contact + ":customer_service:" + window.openedAt() + ":" + kind);
        event.put("source", "/streams-peer");
        event.put("type", type);
        event.put("subject", contact);
        event.put("time", Instant.ofEpochSecond(time).toString());
        event.put("datacontenttype", "application/json");
        ObjectNode data = event.putObject("data");
        data.put("window", "customer_service");
        data.put("opened_at", Instant.ofEpochSecond(window.openedAt()).toString());
        data.put("expires_at", Instant.ofEpochSecond(window.expiresAt()).toString());
        data.put("last_inbound_message_id", window.lastMessageId());
        if (kind.equals("closed")) {
            data.put("close_reason", "expired");
        }
        try {
            return MAPPER.writeValueAsString(event);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    static final class JsonSerializer<T> implements Serializer<T> {
        @Override
        public byte[] serialize(String topic, T value) {
            try {
                return value == null ? null : MAPPER.writeValueAsBytes(value);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    static final class JsonDeserializer<T> implements Deserializer<T> {
        private final Class<T> type;

        JsonDeserializer(Class<T> type) {
            this.type = type;
        }

        @Override
        public T deserialize(String topic, byte[] bytes) {
            try {
                return bytes == null ? null : MAPPER.readValue(bytes, type);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
