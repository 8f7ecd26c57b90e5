"""Pieces of the validation sources that need no server: deserializers, configs and
connection strings, the memory sink's log."""

from __future__ import annotations

import io

import fastavro
import orjson
import polars as pl
import pytest
from pydantic import ValidationError

from backends.retail.sinklog import SinkLog
from backends.validation import (
    AvroDeserializer,
    BytesDeserializer,
    ConfluentAvroDeserializer,
    JSONDeserializer,
    KafkaDataSource,
    KafkaDataSourceConfig,
    StringDeserializer,
)
from backends.validation.deserializers import decode_json_lines, decode_keys

SCHEMA = {
    "type": "record",
    "name": "UserEvent",
    "fields": [{"name": "user_id", "type": "int"}, {"name": "action", "type": "string"}],
}


def test_json_deserializer_as_in_the_spec() -> None:
    deserializer = JSONDeserializer(encoding="utf-8")
    message = deserializer.deserialize(b'{"user": "alice", "action": "login"}')
    assert message == {"user": "alice", "action": "login"}


def test_json_batch_fast_path_keeps_nesting_and_all_fields() -> None:
    values = [orjson.dumps({"a": i, "p": {"x": i}}) for i in range(150)]
    values.append(orjson.dumps({"a": 1.5, "p": {"x": 1, "late": "field"}}))  # after 100 lines
    decoded = JSONDeserializer().decode_batch(values)
    assert decoded.kept is None and not decoded.errors
    assert decoded.frame.schema == pl.Schema(
        {"a": pl.Float64, "p": pl.Struct({"x": pl.Int64, "late": pl.String})}
    )
    assert decoded.frame["a"][-1] == 1.5


def test_json_batch_locates_bad_messages() -> None:
    values = [b'{"a": 1}', b"", b'{"a": 2}', b"null", b'{\n  "a": 3\n}', b"\xff{", None]
    decoded = JSONDeserializer().decode_batch(values)
    assert decoded.kept == [0, 2, 4]
    assert [i for i, _ in decoded.errors] == [1, 3, 5, 6]
    assert decoded.frame["a"].to_list() == [1, 2, 3]


def test_json_with_another_encoding() -> None:
    value = '{"name": "café"}'.encode("latin-1")
    decoded = JSONDeserializer(encoding="latin-1").decode_batch([value, value])
    assert decoded.frame["name"].to_list() == ["café", "café"]


def test_string_deserializer_treats_json_as_json_and_keeps_other_text() -> None:
    decoded = StringDeserializer().decode_batch([b'{"a": 1}', b"plain text", b"42"])
    assert not decoded.errors
    assert decoded.frame.to_dicts() == [
        {"a": 1, "value": None},
        {"a": None, "value": "plain text"},
        {"a": None, "value": "42"},
    ]


def test_bytes_deserializer() -> None:
    decoded = BytesDeserializer().decode_batch([b"\x00\x01", None])
    assert decoded.frame["value"].to_list() == [b"\x00\x01", None]


def _avro(record: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(SCHEMA), record)
    return out.getvalue()


def test_avro_deserializer_as_in_the_spec() -> None:
    deserializer = AvroDeserializer(schema=SCHEMA)
    avro_bytes = _avro({"user_id": 123, "action": "login"})
    assert deserializer.deserialize(avro_bytes) == {"user_id": 123, "action": "login"}
    decoded = deserializer.decode_batch([avro_bytes, b"\x01"])
    assert decoded.kept == [0] and decoded.errors[0][0] == 1


def test_avro_without_schema_reads_container_files() -> None:
    out = io.BytesIO()
    fastavro.writer(out, fastavro.parse_schema(SCHEMA), [{"user_id": 1, "action": "x"}])
    deserializer = AvroDeserializer()
    assert deserializer.deserialize(out.getvalue()) == {"user_id": 1, "action": "x"}
    with pytest.raises(ValueError, match="no Avro schema"):
        deserializer.deserialize(_avro({"user_id": 1, "action": "x"}))


def test_confluent_wire_format_with_a_given_schema() -> None:
    deserializer = ConfluentAvroDeserializer(SCHEMA)
    message = b"\x00" + (5).to_bytes(4, "big") + _avro({"user_id": 9, "action": "a"})
    assert ConfluentAvroDeserializer.schema_id(message) == 5
    assert deserializer.deserialize(message) == {"user_id": 9, "action": "a"}
    with pytest.raises(ValueError, match="wire format"):
        deserializer.deserialize(b"\x01abcd")
    with pytest.raises(ValueError, match="needs"):
        ConfluentAvroDeserializer()


def test_keys() -> None:
    assert decode_keys([b"a", None], "string", "k").to_list() == ["a", None]
    assert decode_keys([b"\xffa"], "string", "k").to_list() == ["\ufffda"]
    assert decode_keys([b"1", b"2"], "json", "k").to_list() == [1, 2]
    assert decode_keys([b"x"], "bytes", "k").dtype == pl.Binary


def test_decode_json_lines_rejects_what_is_not_an_object() -> None:
    assert decode_json_lines([b'{"a": 1}', b"[1]"]) is None
    assert decode_json_lines([b'{"a": 1}', b"null"]) is None
    frame = decode_json_lines([b'{"a": 1}'])
    assert frame is not None and frame.to_dicts() == [{"a": 1}]


def test_config_defaults_are_the_specs() -> None:
    config = KafkaDataSourceConfig(topic="user-events")
    assert config.bootstrap_servers == "localhost:9092"
    assert config.group_id == "truthound-datasource"
    assert (config.max_messages, config.consume_timeout) == (10000, 30.0)
    assert config.auto_offset_reset == "earliest" and config.security_protocol == "PLAINTEXT"
    assert (config.key_deserializer, config.include_key, config.include_headers) == (
        "string",
        True,
        False,
    )
    assert (config.deserializer_type, config.include_metadata) == ("json", False)
    assert (config.metadata_prefix, config.schema_sample_size) == ("_kafka_", 100)


def test_config_rejects_inconsistent_settings() -> None:
    with pytest.raises(ValidationError, match="needs sasl_mechanism"):
        KafkaDataSourceConfig(topic="t", security_protocol="SASL_SSL")
    with pytest.raises(ValidationError, match="username"):
        KafkaDataSourceConfig(topic="t", security_protocol="SASL_SSL", sasl_mechanism="PLAIN")
    with pytest.raises(ValidationError, match="end_offset"):
        KafkaDataSourceConfig(topic="t", start_offset=10, end_offset=5)
    with pytest.raises(ValidationError):
        KafkaDataSourceConfig(topic="t", auto_offset_reset="middle")


def test_connection_strings() -> None:
    source = KafkaDataSource.from_connection_string(
        "kafka://u%40x:p%3Aw@b1:9092,b2:9092/my-topic?security_protocol=SASL_SSL"
        "&sasl_mechanism=SCRAM-SHA-512&partitions=1,3&group_id=g",
        max_messages=5000,
    )
    config = source.config
    assert config.bootstrap_servers == "b1:9092,b2:9092" and config.topic == "my-topic"
    assert (config.sasl_username, config.sasl_password) == ("u@x", "p:w")
    assert config.partitions == [1, 3] and config.max_messages == 5000
    assert source.client_kwargs()["sasl_mechanism"] == "SCRAM-SHA-512"
    with pytest.raises(ValueError, match="kafka://"):
        KafkaDataSource.from_connection_string("http://b1:9092/t")
    with pytest.raises(ValueError, match="topic"):
        KafkaDataSource.from_connection_string("kafka://b1:9092/")


def test_ssl_settings_reach_aiokafka(tmp_path: object) -> None:
    source = KafkaDataSource(KafkaDataSourceConfig(topic="t", security_protocol="SSL"))
    kwargs = source.client_kwargs()
    assert kwargs["security_protocol"] == "SSL" and kwargs["ssl_context"] is not None
    with pytest.raises(FileNotFoundError):
        KafkaDataSource(
            KafkaDataSourceConfig(topic="t", security_protocol="SSL", ssl_cafile="/no/ca.pem")
        ).client_kwargs()


def test_sink_log_pages_and_retains() -> None:
    log = SinkLog(capacity=10)
    assert log.read(0, 5).events == [] and log.read(0, 5).first_seq == 1
    for start in range(0, 30, 4):
        log.append([{"n": n} for n in range(start, start + 4)])
    assert log.latest_seq == 32
    assert log.oldest_seq == 21  # whole batches kept: at least 10 events
    page = log.read(0, 5)
    assert page.first_seq == 21 and [e["n"] for e in page.events] == [20, 21, 22, 23, 24]
    page = log.read(29, 100)
    assert page.first_seq == 30 and [e["n"] for e in page.events] == [29, 30, 31]
    assert log.read(32, 10).events == [] and log.read(32, 10).first_seq == 33
    SinkLog(0).append([{"n": 1}])


def test_the_specs_configuration_sample() -> None:
    config = KafkaDataSourceConfig(
        # Connection
        bootstrap_servers="localhost:9092",
        topic="user-events",
        group_id="truthound-datasource",
        # Consumption
        max_messages=10000,
        consume_timeout=30.0,
        auto_offset_reset="earliest",
        # Security
        security_protocol="PLAINTEXT",
        sasl_mechanism=None,
        sasl_username=None,
        sasl_password=None,
        ssl_cafile=None,
        ssl_certfile=None,
        ssl_keyfile=None,
        # Partition control
        partition=None,
        start_offset=None,
        end_offset=None,
        # Message handling
        key_deserializer="string",
        include_key=True,
        include_headers=False,
        deserializer_type="json",
        # Metadata
        include_metadata=False,
        metadata_prefix="_kafka_",
        # Schema inference
        schema_sample_size=100,
    )
    assert KafkaDataSource(config).client_kwargs()["group_id"] == "truthound-datasource"
    avro = KafkaDataSourceConfig(
        bootstrap_servers="localhost:9092", topic="avro-topic", deserializer_type="avro"
    )
    assert avro.deserializer_type == "avro"


def test_batches_with_different_schemas_concatenate() -> None:
    from backends.validation.kafka_source import concat_frames

    first = pl.DataFrame({"x": [1], "p": [{"a": 1}]})
    second = pl.DataFrame({"x": [1.5], "p": [{"b": "s"}], "y": ["z"]})
    frame = concat_frames([first, pl.DataFrame(), second])
    assert frame.to_dicts() == [
        {"x": 1.0, "p": {"a": 1, "b": None}, "y": None},
        {"x": 1.5, "p": {"a": None, "b": "s"}, "y": "z"},
    ]
