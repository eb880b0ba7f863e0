-- test/data/mini_sakila.sql: a generated database in the shape of MySQL's
-- sakila sample (database `mini_sakila`), for test/sql/69_real_schema_mysql.sql.
-- It has the traits real MySQL schemas have and migrate must load without
-- manual surgery: a foreign-key cycle between two tables (store.manager_staff_id
-- -> staff, staff.store_id -> store, both NOT NULL), a nullable self-reference
-- (staff.reports_to), ENUM, SET and YEAR columns, unsigned integers, a
-- 200 KB BLOB, DECIMAL money, DATETIME and TIMESTAMP columns.  The rows are
-- made from arithmetic on sequence numbers (no randomness), and at the end
-- the database computes its own oracle: a row count and an md5 over a
-- canonical text of every row of each table (table `oracle`), which the test
-- compares with the same text computed by PostgreSQL over the target.
SET SESSION group_concat_max_len = 1073741824;
SET SESSION foreign_key_checks = 0;
CREATE DATABASE mini_sakila CHARACTER SET utf8mb4;
USE mini_sakila;

CREATE TABLE language (
    language_id TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        CHAR(20) NOT NULL,
    last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE country (
    country_id  SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    country     VARCHAR(50) NOT NULL,
    last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE city (
    city_id     SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    city        VARCHAR(50) NOT NULL,
    country_id  SMALLINT UNSIGNED NOT NULL,
    last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_city_country FOREIGN KEY (country_id) REFERENCES country (country_id)
);
CREATE TABLE address (
    address_id  SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    address     VARCHAR(50) NOT NULL,
    district    VARCHAR(20) NOT NULL,
    city_id     SMALLINT UNSIGNED NOT NULL,
    postal_code VARCHAR(10),
    phone       VARCHAR(20) NOT NULL,
    last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_address_city FOREIGN KEY (city_id) REFERENCES city (city_id)
);
CREATE TABLE store (
    store_id         TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    manager_staff_id TINYINT UNSIGNED NOT NULL,
    address_id       SMALLINT UNSIGNED NOT NULL,
    last_update      TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY idx_unique_manager (manager_staff_id)
);
CREATE TABLE staff (
    staff_id    TINYINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    first_name  VARCHAR(45) NOT NULL,
    last_name   VARCHAR(45) NOT NULL,
    address_id  SMALLINT UNSIGNED NOT NULL,
    picture     MEDIUMBLOB,
    email       VARCHAR(50),
    store_id    TINYINT UNSIGNED NOT NULL,
    reports_to  TINYINT UNSIGNED,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    username    VARCHAR(16) NOT NULL,
    last_update TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_staff_store FOREIGN KEY (store_id) REFERENCES store (store_id),
    CONSTRAINT fk_staff_address FOREIGN KEY (address_id) REFERENCES address (address_id),
    CONSTRAINT fk_staff_reports_to FOREIGN KEY (reports_to) REFERENCES staff (staff_id)
);
ALTER TABLE store
    ADD CONSTRAINT fk_store_staff FOREIGN KEY (manager_staff_id) REFERENCES staff (staff_id),
    ADD CONSTRAINT fk_store_address FOREIGN KEY (address_id) REFERENCES address (address_id);
CREATE TABLE customer (
    customer_id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    store_id    TINYINT UNSIGNED NOT NULL,
    first_name  VARCHAR(45) NOT NULL,
    last_name   VARCHAR(45) NOT NULL,
    email       VARCHAR(50),
    address_id  SMALLINT UNSIGNED NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    create_date DATETIME NOT NULL,
    last_update TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_customer_store FOREIGN KEY (store_id) REFERENCES store (store_id),
    CONSTRAINT fk_customer_address FOREIGN KEY (address_id) REFERENCES address (address_id)
);
CREATE TABLE film (
    film_id              SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    title                VARCHAR(128) NOT NULL,
    description          TEXT,
    release_year         YEAR,
    language_id          TINYINT UNSIGNED NOT NULL,
    original_language_id TINYINT UNSIGNED,
    rental_duration      TINYINT UNSIGNED NOT NULL DEFAULT 3,
    rental_rate          DECIMAL(4,2) NOT NULL DEFAULT 4.99,
    length               SMALLINT UNSIGNED,
    replacement_cost     DECIMAL(5,2) NOT NULL DEFAULT 19.99,
    rating               ENUM('G','PG','PG-13','R','NC-17') DEFAULT 'G',
    special_features     SET('Trailers','Commentaries','Deleted Scenes','Behind the Scenes'),
    last_update          TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_film_language FOREIGN KEY (language_id) REFERENCES language (language_id),
    CONSTRAINT fk_film_language_original FOREIGN KEY (original_language_id) REFERENCES language (language_id)
);
CREATE TABLE inventory (
    inventory_id MEDIUMINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    film_id      SMALLINT UNSIGNED NOT NULL,
    store_id     TINYINT UNSIGNED NOT NULL,
    last_update  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_inventory_film FOREIGN KEY (film_id) REFERENCES film (film_id),
    CONSTRAINT fk_inventory_store FOREIGN KEY (store_id) REFERENCES store (store_id)
);
CREATE TABLE rental (
    rental_id    INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    rental_date  DATETIME NOT NULL,
    inventory_id MEDIUMINT UNSIGNED NOT NULL,
    customer_id  SMALLINT UNSIGNED NOT NULL,
    return_date  DATETIME,
    staff_id     TINYINT UNSIGNED NOT NULL,
    last_update  TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY (rental_date, inventory_id, customer_id),
    CONSTRAINT fk_rental_inventory FOREIGN KEY (inventory_id) REFERENCES inventory (inventory_id),
    CONSTRAINT fk_rental_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id),
    CONSTRAINT fk_rental_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id)
);
CREATE TABLE payment (
    payment_id   SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id  SMALLINT UNSIGNED NOT NULL,
    staff_id     TINYINT UNSIGNED NOT NULL,
    rental_id    INT,
    amount       DECIMAL(5,2) NOT NULL,
    payment_date DATETIME NOT NULL,
    last_update  TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT fk_payment_rental FOREIGN KEY (rental_id) REFERENCES rental (rental_id) ON DELETE SET NULL,
    CONSTRAINT fk_payment_customer FOREIGN KEY (customer_id) REFERENCES customer (customer_id),
    CONSTRAINT fk_payment_staff FOREIGN KEY (staff_id) REFERENCES staff (staff_id)
);

-- the rows
INSERT INTO language (language_id, name, last_update)
SELECT seq, ELT(seq, 'English', 'Italian', 'Japanese', 'Mandarin', 'French', 'German'),
       '2006-02-15 05:02:19'
  FROM seq_1_to_6;
INSERT INTO country (country_id, country, last_update)
SELECT seq, CONCAT('Country ', seq), TIMESTAMP('2006-02-15 04:44:00') + INTERVAL seq SECOND
  FROM seq_1_to_109;
INSERT INTO city (city_id, city, country_id, last_update)
SELECT seq, CONCAT('City ', seq, IF(seq % 7 = 0, ' ''the'' old', '')), 1 + seq % 109,
       TIMESTAMP('2006-02-15 04:45:25') + INTERVAL seq SECOND
  FROM seq_1_to_600;
INSERT INTO address (address_id, address, district, city_id, postal_code, phone, last_update)
SELECT seq, CONCAT(seq, ' Main Street'), CONCAT('District ', seq % 40), 1 + seq % 600,
       IF(seq % 11 = 0, NULL, LPAD(seq * 37 % 100000, 5, '0')), CONCAT('+1 555 ', LPAD(seq, 4, '0')),
       TIMESTAMP('2006-02-15 04:45:30') + INTERVAL seq SECOND
  FROM seq_1_to_603;
INSERT INTO store (store_id, manager_staff_id, address_id, last_update)
VALUES (1, 1, 1, '2006-02-15 04:57:12'), (2, 2, 2, '2006-02-15 04:57:12');
-- one staff picture is 200 KB of every byte value: it must arrive whole
INSERT INTO staff (staff_id, first_name, last_name, address_id, picture, email, store_id, reports_to,
                   active, username, last_update)
SELECT seq, ELT(seq, 'Mike', 'Jon', 'Ada'), ELT(seq, 'Hillyer', 'Stephens', 'Byron'), seq + 2,
       CASE seq WHEN 1 THEN (SELECT GROUP_CONCAT(CHAR(x.seq % 256) ORDER BY x.seq SEPARATOR '')
                               FROM seq_0_to_204799 x)
                WHEN 2 THEN x'89504E470D0A1A0A0000' END,
       CONCAT(LOWER(ELT(seq, 'Mike', 'Jon', 'Ada')), '@sakilastaff.com'), 1 + (seq - 1) % 2,
       IF(seq = 1, NULL, 1), seq <> 3, ELT(seq, 'Mike', 'Jon', 'Ada'), '2006-02-15 03:57:16'
  FROM seq_1_to_3;
INSERT INTO customer (customer_id, store_id, first_name, last_name, email, address_id, active,
                      create_date, last_update)
SELECT seq, 1 + seq % 2, CONCAT('First', seq), CONCAT('LAST', seq),
       IF(seq % 13 = 0, NULL, CONCAT('customer', seq, '@sakilacustomer.org')), 5 + seq % 599,
       seq % 17 <> 0, TIMESTAMP('2006-02-14 22:04:36') + INTERVAL seq MINUTE,
       IF(seq % 50 = 0, NULL, TIMESTAMP('2006-02-15 04:57:20'))
  FROM seq_1_to_599;
INSERT INTO film (film_id, title, description, release_year, language_id, original_language_id,
                  rental_duration, rental_rate, length, replacement_cost, rating, special_features,
                  last_update)
SELECT seq, CONCAT('FILM TITLE ', seq),
       IF(seq % 19 = 0, NULL, CONCAT('A story of film ', seq, ' in a place far away')),
       IF(seq % 23 = 0, NULL, 1901 + seq % 255), 1 + seq % 6, IF(seq % 5 = 0, 1 + seq % 3, NULL),
       3 + seq % 5, ELT(1 + seq % 3, 0.99, 2.99, 4.99), IF(seq % 29 = 0, NULL, 46 + seq % 140),
       9.99 + seq % 21, IF(seq % 31 = 0, NULL, ELT(1 + seq % 5, 'G', 'PG', 'PG-13', 'R', 'NC-17')),
       -- every subset of the four features (0 = the empty set), and NULL
       IF(seq % 37 = 0, NULL, seq % 16),
       '2006-02-15 05:03:42'
  FROM seq_1_to_1000;
INSERT INTO inventory (inventory_id, film_id, store_id, last_update)
SELECT seq, 1 + seq % 1000, 1 + seq % 2, '2006-02-15 05:09:17'
  FROM seq_1_to_4581;
INSERT INTO rental (rental_id, rental_date, inventory_id, customer_id, return_date, staff_id, last_update)
SELECT seq, TIMESTAMP('2005-05-24 22:53:30') + INTERVAL seq * 977 SECOND, 1 + seq % 4581,
       1 + seq % 599, IF(seq % 89 = 0, NULL, TIMESTAMP('2005-05-26 22:04:30') + INTERVAL seq * 983 SECOND),
       1 + seq % 2, '2006-02-15 21:30:53'
  FROM seq_1_to_16044;
INSERT INTO payment (payment_id, customer_id, staff_id, rental_id, amount, payment_date, last_update)
SELECT seq, 1 + seq % 599, 1 + seq % 2, IF(seq % 101 = 0, NULL, 1 + seq % 16044),
       ELT(1 + seq % 6, 0.99, 2.99, 4.99, 5.98, 7.99, 11.99),
       TIMESTAMP('2005-05-25 11:30:37') + INTERVAL seq * 613 SECOND, '2006-02-15 22:12:30'
  FROM seq_1_to_16049;
SET SESSION foreign_key_checks = 1;

-- the oracle: per table its row count and the md5 of one canonical line per
-- row (fields joined by '|', NULL skipped as CONCAT_WS does, in key order),
-- of the columns the target keeps (pagila's payment has no last_update, its
-- customer.create_date is a date)
CREATE TABLE oracle (table_name VARCHAR(20) PRIMARY KEY, row_count INT NOT NULL, md5 CHAR(32) NOT NULL);
INSERT INTO oracle
SELECT 'language', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', language_id, name, last_update) ORDER BY language_id SEPARATOR '\n')) FROM language
UNION ALL
SELECT 'country', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', country_id, country, last_update) ORDER BY country_id SEPARATOR '\n')) FROM country
UNION ALL
SELECT 'city', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', city_id, city, country_id, last_update) ORDER BY city_id SEPARATOR '\n')) FROM city
UNION ALL
SELECT 'address', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', address_id, address, district, city_id, postal_code, phone, last_update) ORDER BY address_id SEPARATOR '\n')) FROM address
UNION ALL
SELECT 'store', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', store_id, manager_staff_id, address_id, last_update) ORDER BY store_id SEPARATOR '\n')) FROM store
UNION ALL
SELECT 'staff', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', staff_id, first_name, last_name, address_id, MD5(picture), LENGTH(picture), email, store_id, reports_to, active, username, last_update) ORDER BY staff_id SEPARATOR '\n')) FROM staff
UNION ALL
SELECT 'customer', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', customer_id, store_id, first_name, last_name, email, address_id, active, DATE(create_date), last_update) ORDER BY customer_id SEPARATOR '\n')) FROM customer
UNION ALL
SELECT 'film', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', film_id, title, description, release_year, language_id, original_language_id, rental_duration, rental_rate, length, replacement_cost, rating, CONCAT('{', special_features, '}'), last_update) ORDER BY film_id SEPARATOR '\n')) FROM film
UNION ALL
SELECT 'inventory', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', inventory_id, film_id, store_id, last_update) ORDER BY inventory_id SEPARATOR '\n')) FROM inventory
UNION ALL
SELECT 'rental', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', rental_id, rental_date, inventory_id, customer_id, return_date, staff_id, last_update) ORDER BY rental_id SEPARATOR '\n')) FROM rental
UNION ALL
SELECT 'payment', COUNT(*), MD5(GROUP_CONCAT(CONCAT_WS('|', payment_id, customer_id, staff_id, rental_id, amount, payment_date) ORDER BY payment_id SEPARATOR '\n')) FROM payment;
