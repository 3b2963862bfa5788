// Prints the partition Java's default partitioner picks for each key, to keep the Rust test vectors honest:
//   java -cp "$HOME/.cache/chatsdk/kafka-<version>/libs/*" Murmur2Vectors.java 12 app_1:general ...
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.utils.Utils;

public class Murmur2Vectors {
    public static void main(String[] args) {
        int partitions = Integer.parseInt(args[0]);
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            int partition = Utils.toPositive(Utils.murmur2(key)) % partitions;
            System.out.println("(\"" + args[i] + "\", " + partition + "),");
        }
    }
}
