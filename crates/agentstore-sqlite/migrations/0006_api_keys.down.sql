DROP INDEX api_keys_tenant;
DROP TABLE api_keys;
