// Creates ChatSDK's topics (idempotently) and proves the broker works with a produce/consume round trip.
// Run by infra/local/stack as a single-file program: java -cp "<kafka libs>/*" StackCheck.java <bootstrap> <partitions>
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.*;

public class StackCheck {
    static final String READINESS_TOPIC = "_chatsdk.readiness";

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        int partitions = Integer.parseInt(args[1]);
        Properties common = new Properties();
        common.put("bootstrap.servers", bootstrap);
        common.put("request.timeout.ms", "5000");
        common.put("default.api.timeout.ms", "10000");

        // Retention: the event store and its DLQ keep everything; ephemeral events live one hour.
        Map<String, Map<String, String>> topics = new LinkedHashMap<>();
        topics.put("chatsdk.channel-events.v1", Map.of("retention.ms", "-1", "retention.bytes", "-1"));
        topics.put("chatsdk.channel-events.v1.dlq", Map.of("retention.ms", "-1", "retention.bytes", "-1"));
        topics.put("chatsdk.ephemeral.v1", Map.of("retention.ms", "3600000"));

        try (Admin admin = Admin.create(common)) {
            Set<String> existing = admin.listTopics().names().get();
            List<NewTopic> toCreate = new ArrayList<>();
            for (var entry : topics.entrySet()) {
                if (!existing.contains(entry.getKey())) {
                    toCreate.add(new NewTopic(entry.getKey(), partitions, (short) 1).configs(entry.getValue()));
                }
            }
            if (!existing.contains(READINESS_TOPIC)) {
                toCreate.add(new NewTopic(READINESS_TOPIC, 1, (short) 1).configs(Map.of("retention.ms", "600000")));
            }
            for (NewTopic topic : toCreate) {
                try {
                    admin.createTopics(List.of(topic)).all().get();
                    System.out.println("created topic " + topic.name() + " partitions=" + topic.numPartitions());
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) throw e;
                }
            }
            var descriptions = admin.describeTopics(topics.keySet()).allTopicNames().get();
            for (var d : descriptions.values()) {
                System.out.println("topic " + d.name() + " partitions=" + d.partitions().size());
            }
        }

        // Round trip: produce one record with acks=all and idempotence, then read exactly that offset back.
        String marker = "ready-" + UUID.randomUUID();
        Properties producerProps = new Properties();
        producerProps.putAll(common);
        producerProps.put("acks", "all");
        producerProps.put("enable.idempotence", "true");
        producerProps.put("delivery.timeout.ms", "10000");
        RecordMetadata written;
        try (var producer = new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
            written = producer.send(new ProducerRecord<>(READINESS_TOPIC, marker, marker)).get();
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(common);
        consumerProps.put("enable.auto.commit", "false");
        try (var consumer = new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
            TopicPartition tp = new TopicPartition(READINESS_TOPIC, written.partition());
            consumer.assign(List.of(tp));
            consumer.seek(tp, written.offset());
            long deadline = System.currentTimeMillis() + 10_000;
            while (System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    if (record.offset() == written.offset() && marker.equals(record.value())) {
                        System.out.println("round trip ok offset=" + record.offset());
                        return;
                    }
                }
            }
        }
        System.err.println("round trip failed: produced offset " + written.offset() + " was not read back");
        System.exit(1);
    }
}
