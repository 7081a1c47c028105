pub fn factory() -> skymeter_plugin::CollectorFactory {
    todo!()
}
