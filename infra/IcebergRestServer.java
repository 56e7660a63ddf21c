/*
 * An Iceberg REST catalog server on one loopback address, for tests and the local stack.
 *
 * Apache Iceberg's REST catalog fixture (the apache/iceberg-rest-fixture image) wraps a catalog in
 * RESTCatalogAdapter and serves it with RESTCatalogServlet on Jetty; its main class listens on every
 * interface and logs every catalog property. This one serves the same adapter and servlet (from
 * iceberg-core's published test jar, fetched by `make jars`) on HOST:PORT only and logs no property
 * values. Run by infra.stack as a single-file source program:
 *
 *   java -cp '.jars/iceberg-rest/*' infra/IcebergRestServer.java HOST PORT key=value ...
 *
 * The key=value arguments are the backend catalog's properties (no secrets: S3 credentials come from
 * the AWS_* environment, through the AWS SDK's default provider chain).
 */

import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.handler.gzip.GzipHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public class IcebergRestServer {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: IcebergRestServer HOST PORT [key=value ...]");
      System.exit(2);
    }
    Map<String, String> properties = new HashMap<>();
    for (int i = 2; i < args.length; i++) {
      int eq = args[i].indexOf('=');
      if (eq <= 0) {
        System.err.println("not a key=value catalog property: " + args[i]);
        System.exit(2);
      }
      properties.put(args[i].substring(0, eq), args[i].substring(eq + 1));
    }
    Configuration hadoop = new Configuration();
    // Hadoop's default local file system writes a .crc file beside each file: orphans to every other
    // reader and writer of the warehouse (pyiceberg, orphan-file removal).
    hadoop.set("fs.file.impl", "org.apache.hadoop.fs.RawLocalFileSystem");
    hadoop.setBoolean("fs.file.impl.disable.cache", true);
    Catalog catalog = CatalogUtil.buildIcebergCatalog("rest_backend", properties, hadoop);

    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");
    context.insertHandler(new GzipHandler());
    Server server = new Server(new InetSocketAddress(args[0], Integer.parseInt(args[1])));
    server.setHandler(context);
    server.setStopAtShutdown(true);
    server.start();
    System.out.println("Iceberg REST catalog listening on http://" + args[0] + ":" + args[1]);
    server.join();
  }
}
