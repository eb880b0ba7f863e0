-- test/data/mysql_shop15.sql: databases for sql/43_migrate_database.sql,
-- loaded by test/mariadb/start.sh.
--   migrate_shop15: tables named so that MySQL's case-insensitive collation
--     sorts their foreign keys' names otherwise than PostgreSQL does
--     (orders_ibfk_1 before order_line_ibfk_1: a merge join over the
--     remote catalog that mysql_fdw sorts in MySQL fails), auto_increment
--     keys, an ENUM with a default, a unique key, a composite key;
--   migrate_nokey15: a table with neither a primary key nor a unique key
--     on NOT NULL columns, which migrate_database refuses to guess at.
SET SESSION sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION';
CREATE DATABASE migrate_shop15;
USE migrate_shop15;
CREATE TABLE customers (
    id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email varchar(100) NOT NULL,
    status enum('new','vip') NOT NULL DEFAULT 'new',
    created datetime NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY customers_email (email)
) ENGINE=InnoDB;
CREATE TABLE orders (
    id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id int unsigned NOT NULL,
    total decimal(10,2) NOT NULL DEFAULT 0.00,
    note text,
    CONSTRAINT orders_ibfk_1 FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
CREATE TABLE order_line (
    order_id bigint unsigned NOT NULL,
    line_no smallint NOT NULL,
    qty int NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_line_ibfk_1 FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE
) ENGINE=InnoDB;
INSERT INTO customers (email, status, created)
VALUES ('a@example.com', 'new', '2024-01-02 03:04:05'), ('b@example.com', 'vip', '2024-02-03 04:05:06'),
       ('c@example.com', 'new', '2024-03-04 05:06:07');
INSERT INTO orders (customer_id, total, note) VALUES (1, 10.50, NULL), (1, 20.00, 'gift'), (3, 0.99, 'it''s');
INSERT INTO order_line VALUES (1, 1, 2), (1, 2, 1), (2, 1, 5), (3, 1, 1);
CREATE DATABASE migrate_nokey15;
USE migrate_nokey15;
CREATE TABLE keyed (id int NOT NULL PRIMARY KEY, v varchar(10));
CREATE TABLE audit_log (at datetime, what varchar(100));
INSERT INTO keyed VALUES (1, 'one');
INSERT INTO audit_log VALUES ('2024-01-01 00:00:00', 'started'), ('2024-01-01 00:00:00', 'started');
