-- The embedded IP-to-city database (DB-IP Lite city, CC BY 4.0, attribution
-- required: "IP Geolocation by DB-IP", https://db-ip.com). Loaded by
-- `scripts/import-geoip` (tools/geoip-import), which fills *_new copies of
-- these tables and swaps them in one transaction, so lookups never see a
-- half-loaded database.

-- Distinct places; ranges point here so 10M ranges do not repeat city names.
CREATE TABLE geoip_locations (
    id           integer PRIMARY KEY,
    -- ISO 3166-1 alpha-2, upper case.
    country_code text NOT NULL,
    -- Two-letter code for US states and Canadian provinces ('FL', 'QC'), what
    -- ad platforms match on; null elsewhere.
    region_code  text,
    -- The subdivision as published ('Florida', 'England').
    region_name  text,
    city         text,
    postal_code  text
);

-- Contiguous address ranges with one location, IPv4 and IPv6 (inet orders
-- every IPv4 address before every IPv6 one). Ranges do not overlap, so the
-- range holding an address is the one with the greatest ip_from <= address.
CREATE TABLE geoip_city_ranges (
    ip_from     inet    NOT NULL,
    ip_to       inet    NOT NULL,
    location_id integer NOT NULL
);
CREATE UNIQUE INDEX geoip_city_ranges_ip_from ON geoip_city_ranges (ip_from);

-- One row per completed import: what is loaded, from where, under which licence.
CREATE TABLE geoip_imports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source      text        NOT NULL,
    version     text,
    attribution text        NOT NULL,
    ranges      bigint      NOT NULL,
    locations   bigint      NOT NULL,
    duration_ms bigint      NOT NULL,
    imported_at timestamptz NOT NULL DEFAULT now()
);

-- The location of one address, or no row. The inner LIMIT 1 walks the index
-- backwards to the one candidate range; the outer test rejects gaps.
CREATE FUNCTION geoip_lookup(address inet)
RETURNS TABLE (country_code text, region_code text, region_name text, city text, postal_code text)
LANGUAGE sql STABLE AS $$
    SELECT l.country_code, l.region_code, l.region_name, l.city, l.postal_code
    FROM (SELECT ip_to, location_id FROM geoip_city_ranges
          WHERE ip_from <= address ORDER BY ip_from DESC LIMIT 1) r
    JOIN geoip_locations l ON l.id = r.location_id
    WHERE r.ip_to >= address
$$;
