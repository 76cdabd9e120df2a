from modyn_stream.ingest.watermark import END_OF_TIME, PartitionProgress, global_watermark

PARTS = {("t", 0), ("t", 1)}


def progress(partition, max_time, ended=False, updated=1000):
    return PartitionProgress("t", partition, 1, max_time, ended, updated)


def test_minimum_of_partition_maxima():
    assert global_watermark([progress(0, 500), progress(1, 200)], PARTS, 1500, 60_000) == 200


def test_partition_without_data_holds_everything_back():
    assert global_watermark([progress(0, 500)], PARTS, 1500, 60_000) is None
    assert global_watermark([progress(0, 500), progress(1, None)], PARTS, 1500, 60_000) is None


def test_ended_partition_stops_holding_back_and_all_ended_is_end_of_time():
    assert global_watermark([progress(0, 500), progress(1, 200, ended=True)], PARTS, 1500, 60_000) == 500
    both = [progress(0, 500, ended=True), progress(1, 200, ended=True)]
    assert global_watermark(both, PARTS, 1500, 60_000) == END_OF_TIME


def test_idle_partition_stops_holding_back_only_after_the_timeout():
    items = [progress(0, 500, updated=100_000), progress(1, 200, updated=1000)]
    assert global_watermark(items, PARTS, 30_000, 60_000) == 200
    assert global_watermark(items, PARTS, 70_000, 60_000) == 500
    assert global_watermark(items, PARTS, 70_000, None) == 200  # no idle timeout configured


def test_later_records_of_a_partition_replace_earlier_ones():
    items = [progress(0, 100), progress(1, 900), progress(0, 700)]
    assert global_watermark(items, PARTS, 1500, 60_000) == 700
